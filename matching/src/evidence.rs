//! What one candidate Account has in common with, or against, an incoming company.

use crate::name::NameMatch;
use crate::record::Profile;

/// The comparison of a company with one candidate, field by field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// Names.
    pub name: NameMatch,
    /// Tax ids.
    pub tax_id: Field,
    /// Business domains: `Same` when they share one, `Conflict` when both have some and share
    /// none.
    pub domain: Field,
    /// Countries.
    pub country: Field,
}

/// How one field compares, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    /// Both known and equal.
    Same,
    /// Both known and different.
    Conflict,
    /// Missing on one side.
    Unknown,
}

impl Field {
    fn of<T>(a: Option<T>, b: Option<T>, eq: impl Fn(&T, &T) -> bool) -> Field {
        match (a, b) {
            (Some(a), Some(b)) if eq(&a, &b) => Field::Same,
            (Some(_), Some(_)) => Field::Conflict,
            _ => Field::Unknown,
        }
    }
}

impl Evidence {
    /// Compares an incoming company with a candidate.
    pub fn between(company: &Profile, account: &Profile) -> Evidence {
        let domain = if company.domains.is_empty() || account.domains.is_empty() {
            Field::Unknown
        } else if company.domains.iter().any(|d| account.domains.contains(d)) {
            Field::Same
        } else {
            Field::Conflict
        };
        Evidence {
            name: company.name.compare(&account.name),
            tax_id: Field::of(company.tax_id.as_ref(), account.tax_id.as_ref(), |a, b| {
                a.same_as(b)
            }),
            domain,
            country: Field::of(company.country, account.country, |a, b| a == b),
        }
    }

    /// Whether the candidate has anything pointing at the company: a shared tax id or domain,
    /// or a name that is the same, a typo away or similar — unless the name is all they share
    /// and the candidate is abroad with a website of its own, or merely similar and abroad.
    pub fn is_related(&self) -> bool {
        let abroad = self.country == Field::Conflict;
        self.tax_id == Field::Same
            || self.domain == Field::Same
            || match self.name {
                NameMatch::Same | NameMatch::Typo => !(abroad && self.domain == Field::Conflict),
                NameMatch::Similar => !abroad,
                NameMatch::Different => false,
            }
    }

    /// The rule that makes this candidate a strong match on its own, if any (see the crate
    /// documentation for the rules).
    pub fn strong_rule(&self) -> Option<Rule> {
        use Field::{Conflict, Same};
        let named = self.name != NameMatch::Different;
        if self.tax_id == Same && (named || self.domain == Same) && self.country != Conflict {
            return Some(Rule::TaxId);
        }
        if self.tax_id == Conflict || self.country == Conflict {
            return None;
        }
        match self.name {
            NameMatch::Same if self.domain == Same => Some(Rule::NameAndDomain),
            NameMatch::Same if self.country == Same && self.domain != Conflict => {
                Some(Rule::NameAndCountry)
            }
            NameMatch::Typo if self.domain == Same => Some(Rule::TypoAndDomain),
            _ => None,
        }
    }

    /// Whether this candidate could be the company as much as a strong match could: the same
    /// tax id, or the same name (or one a typo away) with no conflicting tax id, country or
    /// domain. A strong match with such a rival goes to review.
    pub fn is_rival(&self) -> bool {
        self.tax_id == Field::Same
            || (matches!(self.name, NameMatch::Same | NameMatch::Typo)
                && self.tax_id != Field::Conflict
                && self.country != Field::Conflict
                && self.domain != Field::Conflict)
    }

    /// The reasons a reviewer sees, strongest first.
    pub fn reasons(&self) -> Vec<Reason> {
        let mut r = Vec::new();
        match self.tax_id {
            Field::Same => r.push(Reason::SameTaxId),
            Field::Conflict => r.push(Reason::TaxIdConflict),
            Field::Unknown => {}
        }
        match self.name {
            NameMatch::Same => r.push(Reason::SameName),
            NameMatch::Typo => r.push(Reason::NameTypo),
            NameMatch::Similar => r.push(Reason::SimilarName),
            NameMatch::Different => r.push(Reason::DifferentName),
        }
        match self.domain {
            Field::Same => r.push(Reason::SameDomain),
            Field::Conflict => r.push(Reason::DomainConflict),
            Field::Unknown => {}
        }
        match self.country {
            Field::Same => r.push(Reason::SameCountry),
            Field::Conflict => r.push(Reason::CountryConflict),
            Field::Unknown => {}
        }
        r
    }
}

/// The rule behind a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Same tax id, and the name or the domain agrees.
    TaxId,
    /// Same normalised name and same business domain.
    NameAndDomain,
    /// Same normalised name and same country, no domain on either side or the same.
    NameAndCountry,
    /// Name one or two letters off, and the same business domain.
    TypoAndDomain,
}

/// One piece of evidence shown to a reviewer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Tax ids equal.
    SameTaxId,
    /// Both have tax ids and they differ.
    TaxIdConflict,
    /// Normalised names equal.
    SameName,
    /// Names one or two letters apart.
    NameTypo,
    /// Names close, contained in one another, or an acronym.
    SimilarName,
    /// Names unrelated.
    DifferentName,
    /// A business domain in common.
    SameDomain,
    /// Both have business domains, none in common.
    DomainConflict,
    /// Countries equal.
    SameCountry,
    /// Countries differ.
    CountryConflict,
}
