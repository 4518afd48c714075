//! Wholesail's duplicate-matching core: decides whether an incoming B2B company (from Shopify
//! or PostgreSQL) is an existing Salesforce Account, needs a person, or is new — the check that
//! keeps the sync from creating duplicate Accounts and Contacts, as matching by email address
//! alone did (14,000 Contacts for 6,000 companies). Pure functions, no I/O; the sync fetches
//! the candidates with [`soql::where_fragments`] and acts on the [`Decision`].
//!
//! # Normalisation
//! - **Domains** ([`domain`]): email, URL or host → registrable domain (public suffix list),
//!   lower case; free-mail and consumer ISP domains (gmail, yahoo.*, hotmail.*, web.de, qq.com,
//!   …) are dropped and never match.
//! - **Names** ([`name`]): transliterated to ASCII, lower case, punctuation gone (`L.L.C.` →
//!   `llc`), `&`/`+`/"and" dropped, runs of single letters joined (`S. A.` → `sa`), common
//!   abbreviations written out (`Intl` → `international`), a leading "The" and trailing legal
//!   forms (Inc, LLC, GmbH & Co. KG, S.A., Pty Ltd, Sp. z o.o., …) removed.
//! - **Tax ids** ([`tax_id`]): separators gone, upper case, an EU-style country prefix taken
//!   off and kept as the id's country; ids are the same when the numbers are equal and the
//!   countries, where both known, too.
//!
//! # Rules
//! Each candidate is compared field by field ([`Evidence`]): tax id, business domain and
//! country are *same*, *conflict* (both known, different) or *unknown*; names are *same*,
//! *typo* (one edit apart, two from 12 letters), *similar* (Jaro-Winkler ≥ 0.90, one's words
//! inside the other's, or an acronym) or *different*.
//!
//! A candidate is a **strong** match ([`Rule`]) when
//! 1. the tax id is the same and the name (same, typo or similar) or the domain agrees, and
//!    the countries do not conflict;
//! 2. or, with no conflicting tax id or country:
//!    - the name is the same and the domain is the same;
//!    - the name is the same and the country is the same, and the domains do not conflict;
//!    - the name is a typo away and the domain is the same.
//!
//! The company is **linked** when exactly one candidate is strong and no other candidate is a
//! *rival*: one with the same tax id, or the same name (or one a typo away) without a
//! conflicting tax id, country or domain. It goes to **review**, with every related candidate and its reasons, when any
//! candidate is related (same tax id, same domain, a same or typo name, or a similar name not
//! in another country) but no unique strong match exists. It is **created** only when no
//! candidate is related. Precision comes first: conflicting evidence never links.
//!
//! Contacts of a linked Account are matched by [`contact::match_contact`].

pub mod contact;
pub mod country;
mod decide;
pub mod domain;
mod evidence;
mod index;
pub mod name;
mod record;
pub mod soql;
pub mod tax_id;
#[cfg(feature = "testset")]
pub mod testset;

pub use decide::{decide, Candidate, Decision, MAX_REVIEW_CANDIDATES};
pub use evidence::{Evidence, Field, Reason, Rule};
pub use index::AccountIndex;
pub use name::{NameKey, NameMatch};
pub use record::{Account, Company, Profile};

/// Decides for `company` against `candidates`, normalising both: the entry point for a batch
/// of candidates fetched from Salesforce.
pub fn match_company(company: &Company, candidates: &[Account]) -> Decision {
    let profiles: Vec<Profile> = candidates.iter().map(Profile::of_account).collect();
    decide(
        &Profile::of_company(company),
        candidates
            .iter()
            .map(|a| a.id.as_str())
            .zip(profiles.iter()),
    )
}
