//! The keys the sync fetches candidate Accounts by, and the SOQL `WHERE` fragments that fetch
//! them in bulk, with every literal escaped by SOQL's rules.
//!
//! The fragments query match-key fields the sync keeps on each Account (written from
//! [`Profile::of_account`] when it creates or links one, backfilled once for older ones):
//! Salesforce's `Name` is neither accent- nor legal-form-free, `Website` needs a leading
//! wildcard, and tax ids are stored in any format.

use std::collections::BTreeSet;

use thiserror::Error;

use crate::record::{Company, Profile};

/// The keys of one or many incoming companies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CandidateKeys {
    /// First word of each normalised name (`LIKE 'word%'` on the name key).
    pub name_prefixes: BTreeSet<String>,
    /// Business domains.
    pub domains: BTreeSet<String>,
    /// Tax id numbers without country prefix.
    pub tax_ids: BTreeSet<String>,
}

impl CandidateKeys {
    /// The keys of one company.
    pub fn of(company: &Company) -> CandidateKeys {
        let mut keys = CandidateKeys::default();
        keys.add(company);
        keys
    }

    /// Adds a company's keys, to fetch the candidates of a batch in one go.
    pub fn add(&mut self, company: &Company) {
        let p = Profile::of_company(company);
        if let Some(first) = p.name.tokens().first() {
            self.name_prefixes.insert(first.clone());
        }
        self.domains
            .extend(p.domains.iter().map(|d| d.as_str().to_owned()));
        self.tax_ids
            .extend(p.tax_id.iter().map(|t| t.number().to_owned()));
    }
}

/// A field's API name that passed [`FieldName::parse`], safe to put in a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldName(String);

/// A field name that is not a Salesforce API name.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("not a Salesforce field API name: {0:?}")]
pub struct InvalidFieldName(pub String);

impl FieldName {
    /// Accepts an API name (`Name`, `Wholesail_Domain__c`, `Parent.Name`): a letter, then
    /// letters, digits, `_` and `.`, at most 255 characters.
    pub fn parse(raw: &str) -> Result<FieldName, InvalidFieldName> {
        let ok = raw.len() <= 255
            && raw.starts_with(|c: char| c.is_ascii_alphabetic())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        ok.then(|| FieldName(raw.to_owned()))
            .ok_or_else(|| InvalidFieldName(raw.to_owned()))
    }
}

/// The Account fields holding the match keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFields {
    /// Holds the normalised name ([`crate::NameKey`]'s words).
    pub name_key: FieldName,
    /// Holds the business domain.
    pub domain: FieldName,
    /// Holds the tax id number without prefix.
    pub tax_id: FieldName,
}

/// `WHERE` conditions fetching every Account that shares a key with `keys`, split so that
/// none is longer than `max_len` characters (Salesforce caps a whole statement at 100,000 by
/// default; each literal here is far below the 4,000-character cap on strings). Each is
/// `(a OR b OR …)`, to be used as `SELECT … FROM Account WHERE <fragment>`.
pub fn where_fragments(keys: &CandidateKeys, fields: &KeyFields, max_len: usize) -> Vec<String> {
    let terms = keys
        .name_prefixes
        .iter()
        .map(|p| format!("{} LIKE '{}%'", fields.name_key.0, escape_like(p)))
        .chain(in_terms(&fields.domain, &keys.domains, max_len))
        .chain(in_terms(&fields.tax_id, &keys.tax_ids, max_len));
    let mut fragments = Vec::new();
    let mut current = String::new();
    for term in terms {
        if !current.is_empty() && current.len() + term.len() + 6 > max_len {
            fragments.push(format!("({current})"));
            current.clear();
        }
        if !current.is_empty() {
            current.push_str(" OR ");
        }
        current.push_str(&term);
    }
    if !current.is_empty() {
        fragments.push(format!("({current})"));
    }
    fragments
}

/// `field IN ('a','b',…)` terms, each under `max_len`.
fn in_terms(field: &FieldName, values: &BTreeSet<String>, max_len: usize) -> Vec<String> {
    let mut terms = Vec::new();
    let mut list: Vec<String> = Vec::new();
    let mut len = 0;
    for v in values {
        let lit = format!("'{}'", escape(v));
        if !list.is_empty() && field.0.len() + len + lit.len() + 16 > max_len {
            terms.push(format!("{} IN ({})", field.0, list.join(",")));
            list.clear();
            len = 0;
        }
        len += lit.len() + 1;
        list.push(lit);
    }
    if !list.is_empty() {
        terms.push(format!("{} IN ({})", field.0, list.join(",")));
    }
    terms
}

/// Escapes `s` for a SOQL string literal: quotes, backslash and the control characters SOQL
/// has escapes for; other control characters as `\uXXXX`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// [`escape`], and `%` and `_` made literal, for the text of a `LIKE` pattern.
pub fn escape_like(s: &str) -> String {
    escape(s).replace('%', "\\%").replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> KeyFields {
        KeyFields {
            name_key: FieldName::parse("Wholesail_Name_Key__c").unwrap(),
            domain: FieldName::parse("Wholesail_Domain__c").unwrap(),
            tax_id: FieldName::parse("Wholesail_Tax_Id__c").unwrap(),
        }
    }

    #[test]
    fn reserved_characters_are_escaped() {
        assert_eq!(escape("Bob's BBQ"), "Bob\\'s BBQ");
        assert_eq!(escape(r"a\b"), r"a\\b");
        assert_eq!(escape("say \"hi\"\n\t"), "say \\\"hi\\\"\\n\\t");
        assert_eq!(escape("\u{1}"), "\\u0001");
        assert_eq!(escape_like("100%_off's"), "100\\%\\_off\\'s");
    }

    #[test]
    fn keys_are_normalised_and_merged_for_a_batch() {
        let mut keys = CandidateKeys::of(&Company {
            name: "The Müller GmbH".into(),
            contact_emails: vec!["a@shop.mueller.de".into(), "b@gmail.com".into()],
            tax_id: Some("DE 123 456 789".into()),
            ..Company::default()
        });
        keys.add(&Company {
            name: "Acme Tools, Inc.".into(),
            website: Some("https://acme.com/".into()),
            ..Company::default()
        });
        let set = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(keys.name_prefixes, set(&["acme", "muller"]));
        assert_eq!(keys.domains, set(&["acme.com", "mueller.de"]));
        assert_eq!(keys.tax_ids, set(&["123456789"]));
    }

    #[test]
    fn one_fragment_holds_every_key() {
        let keys = CandidateKeys::of(&Company {
            name: "Acme".into(),
            contact_emails: vec!["a@acme.com".into()],
            tax_id: Some("GB123456789".into()),
            ..Company::default()
        });
        assert_eq!(
            where_fragments(&keys, &fields(), 10_000),
            vec![
                "(Wholesail_Name_Key__c LIKE 'acme%' OR Wholesail_Domain__c IN ('acme.com') \
                 OR Wholesail_Tax_Id__c IN ('123456789'))"
            ]
        );
    }

    #[test]
    fn fragments_stay_under_the_length_given() {
        let mut keys = CandidateKeys::default();
        for i in 0..2_000 {
            keys.domains.insert(format!("company-{i}.com"));
            keys.name_prefixes.insert(format!("name{i}"));
        }
        let fragments = where_fragments(&keys, &fields(), 4_000);
        assert!(fragments.len() > 1);
        assert!(fragments.iter().all(|f| f.len() <= 4_000));
        let all = fragments.concat();
        assert!(all.contains("'company-1999.com'") && all.contains("'name1999%'"));
    }

    #[test]
    fn field_names_are_checked() {
        assert!(FieldName::parse("Parent.Wholesail_Domain__c").is_ok());
        for bad in ["", "1abc", "Name = 'x' OR Id", "Na-me", "Name)"] {
            assert_eq!(FieldName::parse(bad), Err(InvalidFieldName(bad.to_owned())));
        }
    }
}
