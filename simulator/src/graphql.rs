//! Recognising the GraphQL operations Wholesail sends — not a GraphQL engine.
//!
//! The simulator reads an operation's type, its first root field and that field's arguments
//! (literals — enum values, objects and lists included — or `$variables`), and finds nested
//! connection arguments such as
//! `lineItems(first: 50)` by name. The selection set is otherwise not interpreted: each
//! operation answers with a fixed, documented set of fields (see the crate README).
//! Shopify's response envelopes and error shapes live here too.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::bucket::{ThrottleStatus, MAX_QUERY_COST};

/// Query or mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `query` (or an anonymous `{ … }`).
    Query,
    /// `mutation`.
    Mutation,
}

/// The recognised shape of a request.
#[derive(Debug)]
pub struct Operation<'q> {
    /// Query or mutation.
    pub kind: Kind,
    /// The first root field, e.g. `metafieldsSet`.
    pub root: &'q str,
    /// The root field's arguments, resolved against the variables (an enum value is a string).
    pub args: Map<String, Value>,
    /// How each root argument was written, for validation errors that depend on it.
    pub arg_sources: HashMap<String, ArgSource>,
    /// The text after the root field's arguments (its selection set and anything after).
    pub selection: &'q str,
}

/// How an argument was written in the query text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgSource {
    /// `$name`: a variable.
    Variable(String),
    /// A bare word such as `ORDERS_CREATE`: an enum value.
    Enum,
    /// Any other literal (string, number, boolean, null, object, list).
    Literal,
}

/// Why a request could not be recognised (answered as a GraphQL error).
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

/// How each argument was written, by name.
type Sources = HashMap<String, ArgSource>;

struct Cursor<'q> {
    s: &'q str,
    pos: usize,
}

impl<'q> Cursor<'q> {
    fn rest(&self) -> &'q str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        loop {
            let r = self.rest();
            let trimmed = r.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
            self.pos += r.len() - trimmed.len();
            if trimmed.starts_with('#') {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else {
                return;
            }
        }
    }

    fn ident(&mut self) -> Option<&'q str> {
        self.skip_ws();
        let r = self.rest();
        let n = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(r.len());
        if n == 0 || r.as_bytes()[0].is_ascii_digit() {
            return None;
        }
        self.pos += n;
        Some(&r[..n])
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// Skips a balanced `(…)` or `{…}` group starting at the cursor, respecting strings.
    fn skip_group(&mut self) -> Result<(), ParseError> {
        let bytes = self.s.as_bytes();
        let mut depth = 0usize;
        while self.pos < bytes.len() {
            if self.rest().starts_with("\"\"\"") {
                let end = self.rest()[3..]
                    .find("\"\"\"")
                    .ok_or_else(|| ParseError("unterminated block string".into()))?;
                self.pos += end + 6;
                continue;
            }
            match bytes[self.pos] {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'(' | b'{' | b'[' => depth += 1,
                b')' | b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Err(ParseError("unbalanced brackets".into()))
    }

    /// Reads a `"…"` or `"""…"""` string literal.
    fn string(&mut self) -> Result<String, ParseError> {
        let r = self.rest();
        if let Some(body) = r.strip_prefix("\"\"\"") {
            let end = body
                .find("\"\"\"")
                .ok_or_else(|| ParseError("unterminated block string".into()))?;
            self.pos += end + 6;
            return Ok(body[..end].trim().to_owned());
        }
        let bytes = r.as_bytes();
        let mut i = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => {
                    let lit = &r[..=i];
                    self.pos += i + 1;
                    return serde_json::from_str(lit)
                        .map_err(|e| ParseError(format!("bad string literal: {e}")));
                }
                _ => i += 1,
            }
        }
        Err(ParseError("unterminated string".into()))
    }

    fn value(&mut self, vars: &Value) -> Result<Value, ParseError> {
        self.sourced_value(vars).map(|(v, _)| v)
    }

    /// A value and how it was written.
    fn sourced_value(&mut self, vars: &Value) -> Result<(Value, ArgSource), ParseError> {
        self.skip_ws();
        let r = self.rest();
        if r.starts_with('$') {
            self.pos += 1;
            let name = self
                .ident()
                .ok_or_else(|| ParseError("bad variable".into()))?;
            let v = vars.get(name).cloned().unwrap_or(Value::Null);
            return Ok((v, ArgSource::Variable(name.to_owned())));
        }
        if r.starts_with('"') {
            return Ok((Value::String(self.string()?), ArgSource::Literal));
        }
        if self.eat('{') {
            let mut object = Map::new();
            while !self.eat('}') {
                let name = self
                    .ident()
                    .ok_or_else(|| ParseError("expected an input field name".into()))?;
                if !self.eat(':') {
                    return Err(ParseError(format!("expected ':' after {name}")));
                }
                object.insert(name.to_owned(), self.value(vars)?);
            }
            return Ok((Value::Object(object), ArgSource::Literal));
        }
        if self.eat('[') {
            let mut list = Vec::new();
            while !self.eat(']') {
                list.push(self.value(vars)?);
            }
            return Ok((Value::Array(list), ArgSource::Literal));
        }
        let n = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .unwrap_or(r.len());
        if n == 0 {
            return Err(ParseError(format!(
                "expected a value at {:?}",
                r.chars().take(10).collect::<String>()
            )));
        }
        let word = &r[..n];
        self.pos += n;
        Ok(match word {
            "true" => (Value::Bool(true), ArgSource::Literal),
            "false" => (Value::Bool(false), ArgSource::Literal),
            "null" => (Value::Null, ArgSource::Literal),
            _ => match word.parse::<i64>() {
                Ok(i) => (json!(i), ArgSource::Literal),
                Err(_) => match word.parse::<f64>() {
                    Ok(f) => (json!(f), ArgSource::Literal),
                    Err(_) => (Value::String(word.to_owned()), ArgSource::Enum),
                },
            },
        })
    }

    fn args(&mut self, vars: &Value) -> Result<Map<String, Value>, ParseError> {
        self.sourced_args(vars).map(|(args, _)| args)
    }

    /// The arguments and how each was written.
    fn sourced_args(&mut self, vars: &Value) -> Result<(Map<String, Value>, Sources), ParseError> {
        let mut args = Map::new();
        let mut sources = HashMap::new();
        if !self.eat('(') {
            return Ok((args, sources));
        }
        loop {
            if self.eat(')') {
                return Ok((args, sources));
            }
            let name = self
                .ident()
                .ok_or_else(|| ParseError("expected an argument name".into()))?;
            if !self.eat(':') {
                return Err(ParseError(format!("expected ':' after {name}")));
            }
            let (v, source) = self.sourced_value(vars)?;
            args.insert(name.to_owned(), v);
            sources.insert(name.to_owned(), source);
        }
    }
}

/// Recognises `query` against `variables`.
pub fn parse<'q>(query: &'q str, variables: &Value) -> Result<Operation<'q>, ParseError> {
    let mut c = Cursor { s: query, pos: 0 };
    c.skip_ws();
    let kind = if c.rest().starts_with('{') {
        Kind::Query
    } else {
        match c.ident() {
            Some("query") => Kind::Query,
            Some("mutation") => Kind::Mutation,
            Some(other) => return Err(ParseError(format!("unsupported operation type {other}"))),
            None => return Err(ParseError("expected an operation".into())),
        }
    };
    // Operation name and variable definitions.
    c.skip_ws();
    if !c.rest().starts_with('{') {
        let _ = c.ident();
        c.skip_ws();
        if c.rest().starts_with('(') {
            c.skip_group()?;
        }
    }
    if !c.eat('{') {
        return Err(ParseError("expected a selection set".into()));
    }
    let mut root = c
        .ident()
        .ok_or_else(|| ParseError("expected a root field".into()))?;
    if c.eat(':') {
        root = c
            .ident()
            .ok_or_else(|| ParseError("expected a field after the alias".into()))?;
    }
    let (args, arg_sources) = c.sourced_args(variables)?;
    Ok(Operation {
        kind,
        root,
        args,
        arg_sources,
        selection: c.rest(),
    })
}

impl Operation<'_> {
    /// The arguments of the first nested field called `field` (e.g. `lineItems`), if selected.
    pub fn nested_args(&self, field: &str, vars: &Value) -> Option<Map<String, Value>> {
        let mut from = 0;
        while let Some(k) = self.selection[from..].find(field) {
            let at = from + k;
            from = at + field.len();
            let before = self.selection[..at].chars().next_back();
            let after = self.selection[from..].chars().next();
            let boundary =
                |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if boundary(before) && boundary(after) {
                let mut c = Cursor {
                    s: self.selection,
                    pos: from,
                };
                return c.args(vars).ok();
            }
        }
        None
    }
}

/// A GraphQL error object with an `extensions.code`.
pub fn error(message: impl Into<String>, code: &str) -> Value {
    json!({"message": message.into(), "extensions": {"code": code}})
}

/// `extensions.cost`.
pub fn cost(requested: u32, actual: Option<u32>, status: ThrottleStatus) -> Value {
    json!({"cost": {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": status,
    }})
}

/// The body Shopify answers (with HTTP 200) when the bucket cannot cover a request.
pub fn throttled(requested: u32, status: ThrottleStatus) -> Value {
    json!({
        "errors": [{
            "message": "Throttled",
            "extensions": {
                "code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits",
            },
        }],
        "extensions": cost(requested, None, status),
    })
}

/// The body Shopify answers when one query requests more than 1,000 points.
pub fn max_cost_exceeded(requested: u32) -> Value {
    json!({
        "errors": [{
            "message": format!(
                "Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST}).\n\nSee https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\ncost of a query is calculated.\n\nTo query larger amounts of data with fewer limits, bulk operations should be used instead.\nSee https://shopify.dev/api/usage/bulk-operations/queries for usage details.\n"
            ),
            "extensions": {
                "code": "MAX_COST_EXCEEDED",
                "cost": requested,
                "maxCost": MAX_QUERY_COST,
                "documentation": "https://shopify.dev/api/usage/rate-limits",
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_root_field_and_arguments_from_variables_and_literals() {
        let q = r#"
            # a comment
            mutation Push($mfs: [MetafieldsSetInput!]!) {
              metafieldsSet(metafields: $mfs) { metafields { id } userErrors { code } }
            }"#;
        let vars = json!({"mfs": [{"key": "k"}]});
        let op = parse(q, &vars).unwrap();
        assert_eq!((op.kind, op.root), (Kind::Mutation, "metafieldsSet"));
        assert_eq!(op.args["metafields"], json!([{"key": "k"}]));

        let q = r#"mutation { bulkOperationRunQuery(query: """
            { products { edges { node { id } } } }
        """, groupObjects: false) { bulkOperation { id } } }"#;
        let op = parse(q, &Value::Null).unwrap();
        assert_eq!(op.root, "bulkOperationRunQuery");
        assert!(op.args["query"].as_str().unwrap().starts_with("{ products"));
        assert_eq!(op.args["groupObjects"], json!(false));

        let q = r#"{ d: draftOrders(first: 5, query: "tag:\"q-1\"") { nodes { id lineItems(first: 20) { nodes { id } } } } }"#;
        let op = parse(q, &Value::Null).unwrap();
        assert_eq!((op.kind, op.root), (Kind::Query, "draftOrders"));
        assert_eq!(op.args["first"], json!(5));
        assert_eq!(op.args["query"], json!("tag:\"q-1\""));
        assert_eq!(
            op.nested_args("lineItems", &Value::Null).unwrap()["first"],
            json!(20)
        );
    }

    #[test]
    fn reads_enum_object_and_list_literals_and_records_how_arguments_were_written() {
        let q = r#"mutation W($uri: String!) {
            webhookSubscriptionCreate(topic: ORDERS_CREATE,
              webhookSubscription: {uri: $uri, format: JSON, includeFields: ["id", "note"]}) { userErrors { message } }
        }"#;
        let op = parse(q, &json!({"uri": "https://edge/hooks"})).unwrap();
        assert_eq!(op.args["topic"], json!("ORDERS_CREATE"));
        assert_eq!(
            op.args["webhookSubscription"],
            json!({"uri": "https://edge/hooks", "format": "JSON", "includeFields": ["id", "note"]})
        );
        assert_eq!(op.arg_sources["topic"], ArgSource::Enum);
        assert_eq!(op.arg_sources["webhookSubscription"], ArgSource::Literal);
        let op = parse(
            r#"mutation($t: WebhookSubscriptionTopic!) { webhookSubscriptionCreate(topic: $t, webhookSubscription: {}) { x } }"#,
            &json!({"t": "ORDERS_PAID"}),
        )
        .unwrap();
        assert_eq!(op.args["topic"], json!("ORDERS_PAID"));
        assert_eq!(op.arg_sources["topic"], ArgSource::Variable("t".into()));
        let op = parse(
            r#"{ webhookSubscriptions(first: 2, topics: []) { x } }"#,
            &Value::Null,
        )
        .unwrap();
        assert_eq!(op.args["topics"], json!([]));
        assert_eq!(op.arg_sources["first"], ArgSource::Literal);
    }

    #[test]
    fn rejects_what_it_cannot_recognise() {
        assert!(parse("subscription { x }", &Value::Null).is_err());
        assert!(parse(
            "mutation { metafieldsSet(metafields: [{key: }]) { x } }",
            &Value::Null
        )
        .is_err());
        assert!(parse(
            "mutation { metafieldsSet(metafields: [{key: \"k\"}",
            &Value::Null
        )
        .is_err());
    }
}
