//! `cargo xtask bench matching`: the duplicate matcher on the seeded test set with known truth
//! — precision, recall, review rate, duplicates created — beside the naive reference measured
//! in the same run: matching by exact contact email alone (what created 14,000 Contacts for
//! 6,000 companies). Then throughput in companies/s against 1,000 and 100,000 candidate
//! Accounts (the index built once; the median of 7 rounds of 1,000 companies), beside the
//! email-only lookup's.

use std::collections::HashMap;
use std::time::Instant;

use wholesail_bench::{median, time_per_call};
use wholesail_matching::testset::{generate, Score, TestSet};
use wholesail_matching::{match_company, Account, AccountIndex, Decision, Rule};

const SEED: u64 = 0x5EED_2026;

/// The naive reference: an incoming company is the Account of the first of its contacts'
/// emails that is already a Contact there, and new otherwise.
struct EmailOnly(HashMap<String, String>);

impl EmailOnly {
    fn new(set: &TestSet) -> EmailOnly {
        let mut by_email = HashMap::new();
        for a in &set.accounts {
            for c in &a.contacts {
                by_email
                    .entry(c.email.trim().to_lowercase())
                    .or_insert_with(|| a.account.id.clone());
            }
        }
        EmailOnly(by_email)
    }

    fn decide(&self, emails: &[String]) -> Decision {
        emails
            .iter()
            .find_map(|e| self.0.get(&e.trim().to_lowercase()))
            .map_or(Decision::Create, |id| Decision::Link {
                account: id.clone(),
                // The reference has no rule; the field only fills the enum.
                rule: Rule::NameAndDomain,
            })
    }
}

fn accounts(set: &TestSet) -> Vec<Account> {
    set.accounts.iter().map(|a| a.account.clone()).collect()
}

fn row(what: &str, s: &Score) {
    println!(
        "| {what} | {:.4} | {:.4} | {:.1}% | {} / {} | {} | {} |",
        s.precision(),
        s.recall(),
        100.0 * s.review_rate(),
        s.correct_links,
        s.links,
        s.links - s.correct_links,
        s.wrong_creates,
    );
}

fn main() {
    println!("## matching quality (seed {SEED:#x}, 1,000 Accounts, 1,000 incoming companies)");
    let set = generate(SEED, 1_000, 1_000);
    let index = AccountIndex::new(&accounts(&set));
    let email_only = EmailOnly::new(&set);
    let ours: Vec<Decision> = set
        .incoming
        .iter()
        .map(|i| index.decide(&i.company))
        .collect();
    let naive: Vec<Decision> = set
        .incoming
        .iter()
        .map(|i| email_only.decide(&i.company.contact_emails))
        .collect();
    let (s_ours, s_naive) = (Score::of(&set, &ours), Score::of(&set, &naive));
    println!(
        "{} true matches, {} new, {} ambiguous (truth: review)",
        s_ours.true_matches,
        set.incoming
            .iter()
            .filter(|i| i.truth == wholesail_matching::testset::Truth::New)
            .count(),
        set.incoming
            .iter()
            .filter(|i| i.truth == wholesail_matching::testset::Truth::Review)
            .count(),
    );
    println!("| matcher | precision | recall | review rate | correct / links | wrong links | duplicates created (true match → create) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    row("wholesail-matching", &s_ours);
    row("exact email only (reference)", &s_naive);

    println!();
    println!("## throughput (1,000 incoming companies per round, median of 7 rounds)");
    println!("| candidate Accounts | index build s | matcher companies/s | email-only companies/s | precision | recall | review rate |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for n in [1_000usize, 100_000] {
        let set = generate(SEED, n, 1_000);
        let accounts = accounts(&set);
        let t = Instant::now();
        let index = AccountIndex::new(&accounts);
        let build = t.elapsed().as_secs_f64();
        let email_only = EmailOnly::new(&set);
        let per_round = |f: &dyn Fn()| time_per_call(7, 1, f);
        let t_ours = per_round(&|| {
            for i in &set.incoming {
                std::hint::black_box(index.decide(&i.company));
            }
        });
        let t_naive = per_round(&|| {
            for i in &set.incoming {
                std::hint::black_box(email_only.decide(&i.company.contact_emails));
            }
        });
        let decisions: Vec<Decision> = set
            .incoming
            .iter()
            .map(|i| index.decide(&i.company))
            .collect();
        let s = Score::of(&set, &decisions);
        let k = set.incoming.len() as f64;
        println!(
            "| {n} | {build:.2} | {:.0} | {:.0} | {:.4} | {:.4} | {:.1}% |",
            k / t_ours,
            k / t_naive,
            s.precision(),
            s.recall(),
            100.0 * s.review_rate(),
        );
    }

    println!();
    println!("## without the index: every company against every Account (1,000 Accounts)");
    let accounts = accounts(&set);
    let sample = &set.incoming[..100];
    let rounds: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for i in sample {
                std::hint::black_box(match_company(&i.company, &accounts));
            }
            sample.len() as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    println!(
        "match_company (normalises all candidates per call): {:.0} companies/s (median of 5 × 100)",
        median(rounds)
    );
}
