//! Contacts of a linked Account: the same email is the same Contact, and a new email joins the
//! Account when nothing says it belongs to another company.

use thiserror::Error;

use crate::domain::{business_domain, registrable_domain, Domain};

/// An address that is not `local@host.tld`.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("not an email address: {0:?}")]
pub struct InvalidEmail(pub String);

/// A trimmed, lower-cased email address with one `@` and a domain that has a dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Normalises `raw`. Local parts are compared without case, as every mail provider the
    /// stores see treats them (RFC 5321 allows otherwise; no one relies on it).
    pub fn parse(raw: &str) -> Result<Email, InvalidEmail> {
        let s = raw.trim().to_lowercase();
        match s.split_once('@') {
            Some((local, host))
                if !local.is_empty()
                    && !host.contains('@')
                    && !s.chars().any(char::is_whitespace)
                    && registrable_domain(host).is_some() =>
            {
                Ok(Email(s))
            }
            _ => Err(InvalidEmail(raw.to_owned())),
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its business domain; `None` for free-mail.
    pub fn business_domain(&self) -> Option<Domain> {
        business_domain(&self.0)
    }
}

/// A Contact of the linked Account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// The Salesforce Id.
    pub id: String,
    /// `Email`, as stored.
    pub email: String,
}

/// What to do with an incoming contact of a company linked to an Account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContactMatch {
    /// The Account has exactly one Contact with this email.
    Existing(String),
    /// A new Contact of the Account.
    Join(JoinReason),
    /// A person decides.
    Review(ContactReview),
}

/// Why a new email joins the Account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinReason {
    /// Its domain is one of the Account's (website, email domain or its Contacts' domains).
    KnownDomain,
    /// A free-mail address: it says nothing against the company's own word that this person
    /// is its contact.
    FreeMail,
}

/// Why a contact needs a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContactReview {
    /// Several Contacts of the Account already have this email (earlier duplicates).
    SeveralContacts(Vec<String>),
    /// A new email at a business domain the Account has never used: maybe another company's.
    ForeignDomain(Domain),
}

/// Matches `email` against the Contacts of the Account the company was linked to;
/// `account_domains` are the Account's website and email domains, in any form.
pub fn match_contact(
    email: &str,
    account_domains: &[&str],
    contacts: &[Contact],
) -> Result<ContactMatch, InvalidEmail> {
    let email = Email::parse(email)?;
    let same: Vec<&Contact> = contacts
        .iter()
        .filter(|c| Email::parse(&c.email).is_ok_and(|e| e == email))
        .collect();
    match same[..] {
        [one] => return Ok(ContactMatch::Existing(one.id.clone())),
        [_, _, ..] => {
            return Ok(ContactMatch::Review(ContactReview::SeveralContacts(
                same.iter().map(|c| c.id.clone()).collect(),
            )))
        }
        [] => {}
    }
    let Some(domain) = email.business_domain() else {
        return Ok(ContactMatch::Join(JoinReason::FreeMail));
    };
    let known = account_domains
        .iter()
        .copied()
        .chain(contacts.iter().map(|c| c.email.as_str()))
        .filter_map(business_domain)
        .any(|d| d == domain);
    Ok(if known {
        ContactMatch::Join(JoinReason::KnownDomain)
    } else {
        ContactMatch::Review(ContactReview::ForeignDomain(domain))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contacts() -> Vec<Contact> {
        vec![
            Contact {
                id: "003A".into(),
                email: "Jane.Doe@Acme.com".into(),
            },
            Contact {
                id: "003B".into(),
                email: "ops@eu.acme.de".into(),
            },
            Contact {
                id: "003C".into(),
                email: "dup@acme.com".into(),
            },
            Contact {
                id: "003D".into(),
                email: " DUP@acme.com".into(),
            },
        ]
    }

    #[test]
    fn the_same_email_in_any_case_is_the_existing_contact() {
        let m = match_contact("  jane.doe@ACME.com ", &["acme.com"], &contacts());
        assert_eq!(m, Ok(ContactMatch::Existing("003A".into())));
    }

    #[test]
    fn a_new_email_at_a_known_domain_joins() {
        let c = contacts();
        assert_eq!(
            match_contact("new@acme.com", &["https://www.acme.com"], &c),
            Ok(ContactMatch::Join(JoinReason::KnownDomain))
        );
        // acme.de is known from a Contact, not from the Account's fields.
        assert_eq!(
            match_contact("new@shop.acme.de", &[], &c),
            Ok(ContactMatch::Join(JoinReason::KnownDomain))
        );
        assert_eq!(
            match_contact("jane.doe@gmail.com", &["acme.com"], &c),
            Ok(ContactMatch::Join(JoinReason::FreeMail))
        );
    }

    #[test]
    fn a_foreign_domain_or_earlier_duplicates_go_to_review() {
        let c = contacts();
        assert!(matches!(
            match_contact("jane@other-co.com", &["acme.com"], &c),
            Ok(ContactMatch::Review(ContactReview::ForeignDomain(d))) if d.as_str() == "other-co.com"
        ));
        assert_eq!(
            match_contact("dup@acme.com", &["acme.com"], &c),
            Ok(ContactMatch::Review(ContactReview::SeveralContacts(vec![
                "003C".into(),
                "003D".into()
            ])))
        );
    }

    #[test]
    fn malformed_addresses_are_errors() {
        for bad in [
            "",
            "jane",
            "jane@",
            "@acme.com",
            "a@b@acme.com",
            "jane doe@acme.com",
        ] {
            assert!(match_contact(bad, &[], &[]).is_err(), "{bad}");
        }
    }
}
