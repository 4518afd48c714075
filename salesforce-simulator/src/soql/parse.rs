//! A recursive-descent parser for the SOQL subset the simulator answers:
//! `SELECT fields|COUNT() FROM object [WHERE cond] [ORDER BY …] [LIMIT n] [OFFSET n]`, with
//! `=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`, `LIKE`, `IN`, `NOT IN`, `AND`, `OR`, `NOT`,
//! parentheses, `null`, and one level of parent fields (`Account.Name`).

/// A parsed query.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// Selected fields (`["Account", "Name"]` for `Account.Name`); empty for `COUNT()`.
    pub fields: Vec<Vec<String>>,
    /// `SELECT COUNT()`.
    pub count: bool,
    /// The sObject.
    pub from: String,
    /// The filter.
    pub filter: Option<Cond>,
    /// `ORDER BY` terms.
    pub order: Vec<Order>,
    /// `LIMIT`.
    pub limit: Option<usize>,
    /// `OFFSET`.
    pub offset: Option<usize>,
}

/// One `ORDER BY` term.
#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    /// The field path.
    pub field: Vec<String>,
    /// `DESC`.
    pub descending: bool,
    /// `NULLS LAST` (default: nulls first ascending, last descending).
    pub nulls_last: bool,
}

/// A literal.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `'text'`.
    Text(String),
    /// `12.5`.
    Number(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// A date or date-time literal, kept as written.
    Temporal(String),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE`
    Like,
}

/// A `WHERE` condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    /// `field op value`.
    Compare(Vec<String>, Op, Literal),
    /// `field [NOT] IN (values)`.
    In(Vec<String>, bool, Vec<Literal>),
    /// `a AND b`.
    And(Box<Cond>, Box<Cond>),
    /// `a OR b`.
    Or(Box<Cond>, Box<Cond>),
    /// `NOT a`.
    Not(Box<Cond>),
}

/// Why a query could not be parsed (Salesforce answers `MALFORMED_QUERY`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(f64),
    Symbol(&'static str),
}

fn tokenize(input: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(ParseError("unterminated string literal".into())),
                    Some('\\') => {
                        let escaped = chars.get(i + 1).copied().unwrap_or('\\');
                        s.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Text(s));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | ':' | '-' | '+'))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            match text.parse::<f64>() {
                Ok(n) => tokens.push(Token::Number(n)),
                // Date and date-time literals (2024-01-31, 2024-01-31T00:00:00Z).
                Err(_) => tokens.push(Token::Word(text)),
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.')) {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let symbol = match two.as_str() {
                "!=" => Some("!="),
                "<>" => Some("<>"),
                "<=" => Some("<="),
                ">=" => Some(">="),
                _ => None,
            };
            if let Some(s) = symbol {
                tokens.push(Token::Symbol(s));
                i += 2;
                continue;
            }
            let one = match c {
                '=' => "=",
                '<' => "<",
                '>' => ">",
                '(' => "(",
                ')' => ")",
                ',' => ",",
                _ => return Err(ParseError(format!("unexpected character '{c}'"))),
            };
            tokens.push(Token::Symbol(one));
            i += 1;
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

/// Parses a SOQL query.
pub fn parse(input: &str) -> Result<Query, ParseError> {
    let mut p = Parser {
        tokens: tokenize(input)?,
        pos: 0,
    };
    let q = p.query()?;
    if let Some(t) = p.peek() {
        return Err(ParseError(format!("unexpected token: {t:?}")));
    }
    Ok(q)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), ParseError> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(ParseError(format!(
                "expecting {kw}, found {:?}",
                self.peek()
            )))
        }
    }

    fn symbol(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Token::Symbol(x)) if *x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn path(&mut self) -> Result<Vec<String>, ParseError> {
        match self.next() {
            Some(Token::Word(w)) => {
                let parts: Vec<String> = w.split('.').map(str::to_owned).collect();
                if parts.len() > 2 || parts.iter().any(String::is_empty) {
                    return Err(ParseError(format!("unsupported field path {w}")));
                }
                Ok(parts)
            }
            other => Err(ParseError(format!("expecting a field, found {other:?}"))),
        }
    }

    fn number(&mut self) -> Result<usize, ParseError> {
        match self.next() {
            Some(Token::Number(n)) if n >= 0.0 && n.fract() == 0.0 => Ok(n as usize),
            other => Err(ParseError(format!("expecting a number, found {other:?}"))),
        }
    }

    fn query(&mut self) -> Result<Query, ParseError> {
        self.expect_keyword("SELECT")?;
        let mut fields = Vec::new();
        let mut count = false;
        if self.keyword("COUNT") {
            if !(self.symbol("(") && self.symbol(")")) {
                return Err(ParseError("only COUNT() is supported".into()));
            }
            count = true;
        } else {
            loop {
                fields.push(self.path()?);
                if !self.symbol(",") {
                    break;
                }
            }
        }
        self.expect_keyword("FROM")?;
        let from = match self.next() {
            Some(Token::Word(w)) => w,
            other => return Err(ParseError(format!("expecting an object, found {other:?}"))),
        };
        let filter = if self.keyword("WHERE") {
            Some(self.or()?)
        } else {
            None
        };
        let mut order = Vec::new();
        if self.keyword("ORDER") {
            self.expect_keyword("BY")?;
            loop {
                let field = self.path()?;
                let descending = if self.keyword("DESC") {
                    true
                } else {
                    self.keyword("ASC");
                    false
                };
                let mut nulls_last = descending;
                if self.keyword("NULLS") {
                    nulls_last = if self.keyword("LAST") {
                        true
                    } else {
                        self.expect_keyword("FIRST")?;
                        false
                    };
                }
                order.push(Order {
                    field,
                    descending,
                    nulls_last,
                });
                if !self.symbol(",") {
                    break;
                }
            }
        }
        let limit = if self.keyword("LIMIT") {
            Some(self.number()?)
        } else {
            None
        };
        let offset = if self.keyword("OFFSET") {
            Some(self.number()?)
        } else {
            None
        };
        Ok(Query {
            fields,
            count,
            from,
            filter,
            order,
            limit,
            offset,
        })
    }

    fn or(&mut self) -> Result<Cond, ParseError> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond, ParseError> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            left = Cond::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Cond, ParseError> {
        if self.keyword("NOT") {
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        if self.symbol("(") {
            let inner = self.or()?;
            if !self.symbol(")") {
                return Err(ParseError("expecting ')'".into()));
            }
            return Ok(inner);
        }
        let field = self.path()?;
        if self.keyword("LIKE") {
            return Ok(Cond::Compare(field, Op::Like, self.literal()?));
        }
        let negated = self.keyword("NOT");
        if self.keyword("IN") {
            if !self.symbol("(") {
                return Err(ParseError("expecting '(' after IN".into()));
            }
            let mut values = Vec::new();
            loop {
                values.push(self.literal()?);
                if !self.symbol(",") {
                    break;
                }
            }
            if !self.symbol(")") {
                return Err(ParseError("expecting ')'".into()));
            }
            return Ok(Cond::In(field, negated, values));
        }
        if negated {
            return Err(ParseError("expecting IN after NOT".into()));
        }
        let op = match self.next() {
            Some(Token::Symbol("=")) => Op::Eq,
            Some(Token::Symbol("!=" | "<>")) => Op::Ne,
            Some(Token::Symbol("<")) => Op::Lt,
            Some(Token::Symbol("<=")) => Op::Le,
            Some(Token::Symbol(">")) => Op::Gt,
            Some(Token::Symbol(">=")) => Op::Ge,
            other => {
                return Err(ParseError(format!(
                    "expecting an operator, found {other:?}"
                )))
            }
        };
        Ok(Cond::Compare(field, op, self.literal()?))
    }

    fn literal(&mut self) -> Result<Literal, ParseError> {
        match self.next() {
            Some(Token::Text(s)) => Ok(Literal::Text(s)),
            Some(Token::Number(n)) => Ok(Literal::Number(n)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("null") => Ok(Literal::Null),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
            Some(Token::Word(w)) if w.starts_with(|c: char| c.is_ascii_digit()) => {
                Ok(Literal::Temporal(w))
            }
            other => Err(ParseError(format!("expecting a value, found {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters_ordering_and_parent_fields() {
        let q = parse(
            "SELECT Id, Account.Name FROM Contact WHERE (Email LIKE '%@acme.com' OR Email = null) \
             AND Shopify_Customer_Id__c IN ('1','2') ORDER BY LastName DESC NULLS LAST LIMIT 10",
        )
        .unwrap();
        assert_eq!(q.fields[1], vec!["Account".to_owned(), "Name".to_owned()]);
        assert_eq!(q.from, "Contact");
        assert!(matches!(q.filter, Some(Cond::And(..))));
        assert!(q.order[0].descending && q.order[0].nulls_last);
        assert_eq!(q.limit, Some(10));
    }

    #[test]
    fn rejects_malformed_queries() {
        assert!(parse("SELECT FROM Account").is_err());
        assert!(parse("SELECT Id FROM Account WHERE Name = 'x").is_err());
        assert!(parse("SELECT Id FROM Account WHERE Name").is_err());
    }
}
