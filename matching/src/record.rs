//! The two sides being matched, as the sync reads them, and their normalised [`Profile`].

use crate::country::Country;
use crate::domain::{business_domain, Domain};
use crate::name::NameKey;
use crate::tax_id::TaxId;

/// An incoming B2B company (from Shopify or PostgreSQL), as raw as it arrives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Company {
    /// The company's name.
    pub name: String,
    /// Its contacts' email addresses (or bare domains); free-mail ones count for nothing.
    pub contact_emails: Vec<String>,
    /// Tax id in any formatting.
    pub tax_id: Option<String>,
    /// Country as a code or a name.
    pub country: Option<String>,
    /// Website URL or host.
    pub website: Option<String>,
}

/// A Salesforce Account that could be the company.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    /// The Salesforce Id.
    pub id: String,
    /// `Name`.
    pub name: String,
    /// `Website`.
    pub website: Option<String>,
    /// The domain its contacts write from (a custom field, or derived from its Contacts).
    pub email_domain: Option<String>,
    /// The tax id field, in any formatting.
    pub tax_id: Option<String>,
    /// `BillingCountry`, free text or code.
    pub billing_country: Option<String>,
}

/// A company or an Account normalised once for comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Normalised name.
    pub name: NameKey,
    /// Registrable business domains, sorted, free-mail left out.
    pub domains: Vec<Domain>,
    /// Normalised tax id.
    pub tax_id: Option<TaxId>,
    /// Country.
    pub country: Option<Country>,
}

impl Profile {
    fn new<'a>(
        name: &str,
        domains: impl IntoIterator<Item = &'a str>,
        tax_id: Option<&str>,
        country: Option<&str>,
    ) -> Profile {
        let country = country.and_then(Country::parse);
        let mut domains: Vec<Domain> = domains.into_iter().filter_map(business_domain).collect();
        domains.sort();
        domains.dedup();
        Profile {
            name: NameKey::new(name),
            domains,
            tax_id: tax_id.and_then(|t| TaxId::parse(t, country)),
            country,
        }
    }

    /// Normalises an incoming company: domains of its website and contact emails.
    pub fn of_company(c: &Company) -> Profile {
        let domains = c
            .website
            .iter()
            .chain(&c.contact_emails)
            .map(String::as_str);
        Profile::new(&c.name, domains, c.tax_id.as_deref(), c.country.as_deref())
    }

    /// Normalises an Account: domains of its website and email domain.
    pub fn of_account(a: &Account) -> Profile {
        let domains = a.website.iter().chain(&a.email_domain).map(String::as_str);
        Profile::new(
            &a.name,
            domains,
            a.tax_id.as_deref(),
            a.billing_country.as_deref(),
        )
    }
}
