//! Many Accounts normalised once and indexed, so each incoming company is compared only with
//! the Accounts that share a key with it rather than with all of them.

use std::collections::{HashMap, HashSet};

use crate::decide::{decide, Decision};
use crate::record::{Account, Company, Profile};

/// Accounts indexed by tax id number, business domain, name word and name prefix.
pub struct AccountIndex {
    ids: Vec<String>,
    profiles: Vec<Profile>,
    by_key: HashMap<Key, Vec<u32>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    TaxId(String),
    Domain(String),
    Word(String),
    Prefix(String),
    Deletion(String),
}

/// A name word shared by more Accounts than this (`trading`, `group`) finds no candidates
/// alone: it says too little to be worth comparing with them all.
const MAX_WORD_POSTINGS: usize = 500;

/// Length of the name prefix key, which finds typos in the words after the first.
const PREFIX_LEN: usize = 4;

/// Names longer than this get no one-letter-deleted keys (the word and prefix keys remain).
const MAX_DELETION_LEN: usize = 40;

impl AccountIndex {
    /// Normalises and indexes `accounts`.
    pub fn new(accounts: &[Account]) -> AccountIndex {
        let mut index = AccountIndex {
            ids: Vec::with_capacity(accounts.len()),
            profiles: Vec::with_capacity(accounts.len()),
            by_key: HashMap::new(),
        };
        for (i, account) in accounts.iter().enumerate() {
            let profile = Profile::of_account(account);
            for key in keys(&profile) {
                index.by_key.entry(key).or_default().push(i as u32);
            }
            index.ids.push(account.id.clone());
            index.profiles.push(profile);
        }
        index
    }

    /// The number of Accounts.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no Accounts.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Decides for `company` against the indexed Accounts that share a key with it.
    ///
    /// Equal to [`decide`] over all Accounts, except that a merely similar name (not one edit
    /// away) is found only when it shares a word (not one of the commonest) or its first four
    /// letters.
    pub fn decide(&self, company: &Company) -> Decision {
        let profile = Profile::of_company(company);
        let mut seen = HashSet::new();
        for key in keys(&profile) {
            let Some(postings) = self.by_key.get(&key) else {
                continue;
            };
            if matches!(key, Key::Word(_)) && postings.len() > MAX_WORD_POSTINGS {
                continue;
            }
            seen.extend(postings.iter().copied());
        }
        let mut found: Vec<u32> = seen.into_iter().collect();
        found.sort_unstable();
        decide(
            &profile,
            found
                .into_iter()
                .map(|i| (self.ids[i as usize].as_str(), &self.profiles[i as usize])),
        )
    }
}

fn keys(p: &Profile) -> impl Iterator<Item = Key> + '_ {
    let tax = p.tax_id.iter().map(|t| Key::TaxId(t.number().to_owned()));
    let domains = p.domains.iter().map(|d| Key::Domain(d.as_str().to_owned()));
    let words = p.name.tokens().iter().map(|w| Key::Word(w.clone()));
    let compact = p.name.compact();
    let prefix =
        (!compact.is_empty()).then(|| Key::Prefix(compact.chars().take(PREFIX_LEN).collect()));
    // The name with each letter left out in turn: two names one edit apart (a typo, a swap)
    // share one of these, so typos are found without comparing every name.
    let deletions = (compact.len() <= MAX_DELETION_LEN)
        .then(|| {
            (0..compact.len())
                .map(move |i| Key::Deletion(format!("{}{}", &compact[..i], &compact[i + 1..])))
        })
        .into_iter()
        .flatten();
    tax.chain(domains)
        .chain(words)
        .chain(prefix)
        .chain(std::iter::once(Key::Deletion(compact.to_owned())))
        .chain(deletions)
}
