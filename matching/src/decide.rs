//! The decision for one incoming company against its candidate Accounts: link, review or
//! create — never a guess.

use crate::evidence::{Evidence, Reason, Rule};
use crate::record::Profile;

/// What to do with an incoming company.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Exactly one candidate matches strongly and no other could be the company as well.
    Link {
        /// The Account's Salesforce Id.
        account: String,
        /// The rule that matched.
        rule: Rule,
    },
    /// Evidence that a person must weigh: candidates, strongest first.
    Review(Vec<Candidate>),
    /// No candidate has anything in common with the company.
    Create,
}

/// A candidate shown for review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The Account's Salesforce Id.
    pub account: String,
    /// The rule it would have matched alone, if any.
    pub rule: Option<Rule>,
    /// What it shares with the company and what contradicts it.
    pub reasons: Vec<Reason>,
}

/// At most this many candidates are listed for review.
pub const MAX_REVIEW_CANDIDATES: usize = 10;

/// Decides for `company` against `candidates` (Salesforce Id and normalised Account).
pub fn decide<'a>(
    company: &Profile,
    candidates: impl IntoIterator<Item = (&'a str, &'a Profile)>,
) -> Decision {
    let mut related: Vec<(&str, Evidence)> = candidates
        .into_iter()
        .map(|(id, account)| (id, Evidence::between(company, account)))
        .filter(|(_, e)| e.is_related())
        .collect();
    if related.is_empty() {
        return Decision::Create;
    }
    let strong: Vec<usize> = (0..related.len())
        .filter(|&i| related[i].1.strong_rule().is_some())
        .collect();
    if let [only] = strong[..] {
        let rivals = related
            .iter()
            .enumerate()
            .any(|(i, (_, e))| i != only && e.is_rival());
        if !rivals {
            let (id, e) = &related[only];
            return Decision::Link {
                account: (*id).to_owned(),
                rule: e.strong_rule().expect("strong"),
            };
        }
    }
    related.sort_by_key(|(id, e)| (e.strong_rule().is_none(), e.tax_id, e.name, *id));
    Decision::Review(
        related
            .into_iter()
            .take(MAX_REVIEW_CANDIDATES)
            .map(|(id, e)| Candidate {
                account: id.to_owned(),
                rule: e.strong_rule(),
                reasons: e.reasons(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Account, Company};

    fn account(
        id: &str,
        name: &str,
        domain: Option<&str>,
        tax: Option<&str>,
        country: Option<&str>,
    ) -> Account {
        Account {
            id: id.into(),
            name: name.into(),
            website: domain.map(|d| format!("https://www.{d}/")),
            email_domain: None,
            tax_id: tax.map(Into::into),
            billing_country: country.map(Into::into),
        }
    }

    fn company(name: &str, email: &str, tax: Option<&str>, country: Option<&str>) -> Company {
        Company {
            name: name.into(),
            contact_emails: vec![email.into()],
            tax_id: tax.map(Into::into),
            country: country.map(Into::into),
            website: None,
        }
    }

    fn run(c: &Company, accounts: &[Account]) -> Decision {
        crate::match_company(c, accounts)
    }

    fn linked(d: &Decision) -> Option<(&str, Rule)> {
        match d {
            Decision::Link { account, rule } => Some((account, *rule)),
            _ => None,
        }
    }

    #[test]
    fn the_same_tax_id_links_across_formats() {
        let accounts = [account(
            "A",
            "Müller Bau GmbH",
            None,
            Some("DE123456789"),
            Some("Germany"),
        )];
        let c = company("Mueller Bau", "x@gmail.com", Some("de 123 456 789"), None);
        assert_eq!(linked(&run(&c, &accounts)), Some(("A", Rule::TaxId)));
    }

    #[test]
    fn name_and_domain_link_but_the_domain_alone_reviews() {
        let accounts = [
            account("A", "Acme Tools, Inc.", Some("acme.com"), None, None),
            account("B", "Acme Logistics LLC", Some("acme.com"), None, None),
        ];
        let c = company("ACME TOOLS", "buyer@acme.com", None, None);
        assert_eq!(
            linked(&run(&c, &accounts)),
            Some(("A", Rule::NameAndDomain))
        );
        let c = company("Acme Robotics", "buyer@acme.com", None, None);
        assert!(matches!(run(&c, &accounts), Decision::Review(cs) if cs.len() == 2));
    }

    #[test]
    fn name_and_country_link_only_without_a_rival() {
        let de = account("A", "Atlas Trading GmbH", None, None, Some("DE"));
        let gb = account("B", "Atlas Trading Ltd", None, None, Some("GB"));
        let unknown = account("C", "Atlas Trading", None, None, None);
        let c = company("Atlas Trading", "a@gmail.com", None, Some("DE"));
        assert_eq!(
            linked(&run(&c, &[de.clone(), gb])),
            Some(("A", Rule::NameAndCountry)),
            "the homonym abroad is no rival"
        );
        assert!(matches!(run(&c, &[de, unknown]), Decision::Review(_)));
    }

    #[test]
    fn a_name_alone_or_free_mail_never_links() {
        let accounts = [account(
            "A",
            "Atlas Trading",
            Some("atlas.com"),
            None,
            Some("DE"),
        )];
        let c = company("Atlas Trading", "a@gmail.com", None, None);
        assert!(matches!(run(&c, &accounts), Decision::Review(_)));
        let accounts = [account("A", "Zenith", Some("gmail.com"), None, None)];
        let c = company("Orbit", "a@gmail.com", None, None);
        assert_eq!(
            run(&c, &accounts),
            Decision::Create,
            "free-mail matches nothing"
        );
    }

    #[test]
    fn conflicting_tax_ids_review_even_with_name_and_domain() {
        let accounts = [account(
            "A",
            "Acme",
            Some("acme.com"),
            Some("GB123456789"),
            None,
        )];
        let c = company("Acme Ltd", "a@acme.com", Some("GB987654321"), None);
        assert!(
            matches!(run(&c, &accounts), Decision::Review(cs) if cs[0].reasons.contains(&Reason::TaxIdConflict))
        );
    }

    #[test]
    fn a_typo_links_with_the_domain_and_reviews_without() {
        let accounts = [account(
            "A",
            "Nordwind Logistik GmbH",
            Some("nordwind.de"),
            None,
            None,
        )];
        let c = company("Nordwnid Logistik", "a@nordwind.de", None, None);
        assert_eq!(
            linked(&run(&c, &accounts)),
            Some(("A", Rule::TypoAndDomain))
        );
        let c = company("Nordwnid Logistik", "a@gmail.com", None, Some("DE"));
        assert!(matches!(run(&c, &accounts), Decision::Review(_)));
    }

    #[test]
    fn two_accounts_with_the_same_tax_id_review() {
        let accounts = [
            account("A", "Acme", None, Some("DE123456789"), None),
            account("B", "Acme GmbH", None, Some("123456789"), Some("DE")),
        ];
        let c = company("Acme", "a@gmail.com", Some("DE123456789"), None);
        assert!(matches!(run(&c, &accounts), Decision::Review(cs) if cs.len() == 2));
    }

    #[test]
    fn nothing_in_common_creates() {
        let accounts = [account(
            "A",
            "Zenith Foods",
            Some("zenith.com"),
            Some("GB123456789"),
            Some("GB"),
        )];
        let c = company(
            "Orbit Tools",
            "a@orbit.io",
            Some("US 12-3456789"),
            Some("US"),
        );
        assert_eq!(run(&c, &accounts), Decision::Create);
        assert_eq!(run(&c, &[]), Decision::Create);
    }
}
