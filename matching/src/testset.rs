//! A seeded test set with known truth: Salesforce Accounts as a sales team leaves them (legal
//! forms, casing, accents, free-mail contacts, homonyms abroad, subsidiaries on one domain,
//! earlier duplicates) and incoming companies that are the same (written differently), new,
//! or ambiguous, each labelled with what the matcher should do. Built for the integration test
//! and `cargo xtask bench matching`.

use std::collections::{HashMap, HashSet};

use crate::contact::Contact;
use crate::decide::Decision;
use crate::name::NameKey;
use crate::record::{Account, Company};

/// Accounts (with their Contacts) and incoming companies with the truth about each.
pub struct TestSet {
    /// The candidate Accounts.
    pub accounts: Vec<TestAccount>,
    /// The incoming companies.
    pub incoming: Vec<Incoming>,
}

/// An Account and its Contacts.
pub struct TestAccount {
    /// The Account.
    pub account: Account,
    /// Its Contacts.
    pub contacts: Vec<Contact>,
}

/// An incoming company and what should happen to it.
pub struct Incoming {
    /// The company.
    pub company: Company,
    /// The truth.
    pub truth: Truth,
    /// How it was made, for reading failures: `match/typo`, `new/homonym-abroad`, ….
    pub scenario: &'static str,
}

/// What the matcher should decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Truth {
    /// It is this Account.
    Match(String),
    /// It is in no Account.
    New,
    /// The data cannot tell (e.g. the company is in two Accounts already): a person decides.
    Review,
}

/// Precision, recall and rates of a run of decisions against the truth.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Score {
    /// Companies decided.
    pub companies: usize,
    /// Companies whose truth is a match.
    pub true_matches: usize,
    /// Links made.
    pub links: usize,
    /// Links to the true Account.
    pub correct_links: usize,
    /// Reviews.
    pub reviews: usize,
    /// Creates.
    pub creates: usize,
    /// Creates of a company that is an Account: each a new duplicate.
    pub wrong_creates: usize,
    /// Creates of a company whose truth is review.
    pub creates_of_ambiguous: usize,
}

impl Score {
    /// Scores `decisions`, in the order of `set.incoming`.
    pub fn of(set: &TestSet, decisions: &[Decision]) -> Score {
        let mut s = Score {
            companies: decisions.len(),
            ..Score::default()
        };
        for (inc, d) in set.incoming.iter().zip(decisions) {
            if matches!(inc.truth, Truth::Match(_)) {
                s.true_matches += 1;
            }
            match (d, &inc.truth) {
                (Decision::Link { account, .. }, Truth::Match(want)) => {
                    s.links += 1;
                    s.correct_links += usize::from(account == want);
                }
                (Decision::Link { .. }, _) => s.links += 1,
                (Decision::Review(_), _) => s.reviews += 1,
                (Decision::Create, truth) => {
                    s.creates += 1;
                    s.wrong_creates += usize::from(matches!(truth, Truth::Match(_)));
                    s.creates_of_ambiguous += usize::from(*truth == Truth::Review);
                }
            }
        }
        s
    }

    /// Correct links / all links (1.0 with no link).
    pub fn precision(&self) -> f64 {
        if self.links == 0 {
            1.0
        } else {
            self.correct_links as f64 / self.links as f64
        }
    }

    /// Correct links / true matches.
    pub fn recall(&self) -> f64 {
        self.correct_links as f64 / self.true_matches.max(1) as f64
    }

    /// Reviews / companies.
    pub fn review_rate(&self) -> f64 {
        self.reviews as f64 / self.companies.max(1) as f64
    }
}

/// SplitMix64: small, seedable, the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `p` percent.
    fn pct(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    fn digits(&mut self, n: usize) -> String {
        // A leading non-zero digit keeps ids from looking like placeholders.
        (0..n)
            .map(|i| {
                let d = if i == 0 {
                    1 + self.below(9)
                } else {
                    self.below(10)
                };
                char::from(b'0' + d as u8)
            })
            .collect()
    }
}

/// The country of a company and the things that follow from it.
struct Land {
    code: &'static str,
    name: &'static str,
    tld: &'static str,
    forms: &'static [&'static str],
}

const LANDS: &[Land] = &[
    Land {
        code: "US",
        name: "United States",
        tld: "com",
        forms: &["Inc.", "LLC", "Corp.", "Inc", "Co."],
    },
    Land {
        code: "GB",
        name: "United Kingdom",
        tld: "co.uk",
        forms: &["Ltd", "Limited", "PLC", "Ltd."],
    },
    Land {
        code: "DE",
        name: "Germany",
        tld: "de",
        forms: &["GmbH", "AG", "GmbH & Co. KG", "KG"],
    },
    Land {
        code: "FR",
        name: "France",
        tld: "fr",
        forms: &["SAS", "SARL", "S.A."],
    },
    Land {
        code: "ES",
        name: "Spain",
        tld: "es",
        forms: &["S.L.", "S.A."],
    },
    Land {
        code: "IT",
        name: "Italy",
        tld: "it",
        forms: &["S.p.A.", "S.r.l."],
    },
    Land {
        code: "NL",
        name: "Netherlands",
        tld: "nl",
        forms: &["B.V.", "N.V."],
    },
    Land {
        code: "SE",
        name: "Sweden",
        tld: "se",
        forms: &["AB"],
    },
    Land {
        code: "CH",
        name: "Switzerland",
        tld: "ch",
        forms: &["AG", "GmbH", "SA"],
    },
    Land {
        code: "AT",
        name: "Austria",
        tld: "at",
        forms: &["GmbH"],
    },
    Land {
        code: "PL",
        name: "Poland",
        tld: "pl",
        forms: &["Sp. z o.o."],
    },
    Land {
        code: "AU",
        name: "Australia",
        tld: "com.au",
        forms: &["Pty Ltd"],
    },
    Land {
        code: "CA",
        name: "Canada",
        tld: "ca",
        forms: &["Inc.", "Ltd."],
    },
    Land {
        code: "DK",
        name: "Denmark",
        tld: "dk",
        forms: &["ApS", "A/S"],
    },
    Land {
        code: "FI",
        name: "Finland",
        tld: "fi",
        forms: &["Oy"],
    },
];

/// Other spellings of a legal form, as people type them.
fn form_variants(form: &str) -> &'static [&'static str] {
    match form {
        "Inc." | "Inc" => &["Inc", "Inc.", ", Inc.", "Incorporated", "INC"],
        "LLC" => &["L.L.C.", "llc", ", LLC"],
        "Corp." => &["Corporation", "Corp", "CORP."],
        "Co." => &["Company", "& Co.", "Co"],
        "Ltd" | "Ltd." => &["Limited", "Ltd.", "LTD", ", Ltd"],
        "Limited" => &["Ltd", "Ltd."],
        "PLC" => &["plc", "P.L.C."],
        "GmbH" => &["GMBH", "Gmbh", "G.m.b.H."],
        "GmbH & Co. KG" => &["GmbH & Co KG", "GmbH u. Co. KG", "KG"],
        "S.A." | "SA" => &["SA", "S. A.", "sa"],
        "S.L." => &["SL", "S. L."],
        "S.p.A." => &["SpA", "S.P.A."],
        "S.r.l." => &["Srl", "S.R.L."],
        "B.V." => &["BV", "B. V."],
        "N.V." => &["NV"],
        "Pty Ltd" => &["Pty. Ltd.", "PTY LTD", "Pty Limited"],
        "Sp. z o.o." => &["sp. z o. o.", "Sp z oo"],
        _ => &[""],
    }
}

const SYLLABLES_A: &[&str] = &[
    "Nor", "Vel", "Kal", "Bri", "Ast", "Mar", "Sol", "Tre", "Lum", "Gra", "Hal", "Ori", "Pax",
    "Zen", "Cor", "Dal", "Fen", "Iver", "Jas", "Kor", "Lin", "Mo", "Nex", "Oak", "Pel", "Quin",
    "Ros", "Sil", "Tav", "Ul", "Vin", "Wex", "Yar", "Zor", "Bel", "Cam", "Dor", "Elm", "Fal",
    "Gar",
];
const SYLLABLES_B: &[&str] = &[
    "", "a", "e", "i", "o", "an", "er", "or", "is", "el", "u", "ar",
];
const SYLLABLES_C: &[&str] = &[
    "vex", "tis", "ron", "dale", "field", "ford", "wick", "stone", "mont", "berg", "haus", "ton",
    "ley", "gate", "bridge", "wood", "brook", "crest", "point", "ridge", "mark", "line", "tek",
    "dyn", "lux", "pro", "nova", "ra", "lo", "ix",
];
const INDUSTRY: &[&str] = &[
    "Logistics",
    "Foods",
    "Coffee Roasters",
    "Industrial Supply",
    "Hardware",
    "Textiles",
    "Furniture",
    "Medical",
    "Pharma",
    "Electronics",
    "Packaging",
    "Brewing",
    "Outdoor",
    "Garden Center",
    "Pet Supplies",
    "Office Supplies",
    "Cosmetics",
    "Bakery",
    "Wine Merchants",
    "Tools",
    "Marine",
    "Auto Parts",
    "Print",
    "Ceramics",
    "Optics",
    "International",
    "Manufacturing",
    "Services",
    "Brothers",
    "Trading",
];
const SURNAMES: &[&str] = &[
    "Müller",
    "Schäfer",
    "Größmann",
    "Dvořák",
    "Søndergaard",
    "Åberg",
    "Peña",
    "Gonçalves",
    "Lefèvre",
    "Brontë",
    "Núñez",
    "Öztürk",
    "Château",
    "Łukasik",
    "Kovačić",
    "Jørgensen",
    "O'Brien",
    "Smith",
    "Johnson",
    "García",
    "Rossi",
    "Janssen",
    "Lindqvist",
    "Nowak",
];
const SURNAME_TAILS: &[&str] = &[
    "& Sons",
    "& Söhne",
    "et Fils",
    "e Hijos",
    "& Partners",
    "Bau",
    "Brothers",
    "Holzbau",
    "Bäckerei",
    "& Co",
    "Weine",
    "Café",
];
const DIVISIONS: &[&str] = &[
    "Europe",
    "Nordic",
    "Retail",
    "Wholesale",
    "Direct",
    "Labs",
    "Services",
];
const FIRST: &[&str] = &[
    "anna", "ben", "chloe", "david", "emma", "felix", "greta", "hugo", "ines", "jan", "karin",
    "luca", "maria", "nils", "olga", "paul", "rosa", "sven", "tara", "umar", "vera", "will",
];
const LAST: &[&str] = &[
    "schmidt", "martin", "rossi", "garcia", "jansen", "berg", "novak", "smith", "brown", "dubois",
    "weber", "moreau", "lopez", "kowalski", "nielsen", "virtanen",
];
const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "hotmail.com",
    "hotmail.fr",
    "outlook.com",
    "web.de",
    "gmx.de",
    "icloud.com",
    "live.com",
    "orange.fr",
    "libero.it",
    "wp.pl",
];
/// Bookkeepers' and agencies' free-mail addresses that appear on several small companies.
const SHARED_MAILBOXES: &[&str] = &[
    "buchhaltung.service@gmail.com",
    "invoices.bookkeeping@gmail.com",
    "office.admin@web.de",
    "compta.cabinet@orange.fr",
    "orders.agent@yahoo.com",
    "ap.outsourced@outlook.com",
];

/// A company as it exists in the world (one per brand and country).
struct Entity {
    core: String,
    form: &'static str,
    land: &'static Land,
    domain: Option<String>,
    tax: Option<String>,
}

/// Generates `accounts` Accounts and `incoming` companies from `seed`.
pub fn generate(seed: u64, accounts: usize, incoming: usize) -> TestSet {
    Generator {
        rng: Rng(seed),
        names: HashSet::new(),
        domains: HashSet::new(),
        lands_of: HashMap::new(),
        accounts: Vec::with_capacity(accounts),
        entities: Vec::with_capacity(accounts),
        entity_accounts: Vec::with_capacity(accounts),
    }
    .run(accounts, incoming)
}

struct Generator {
    rng: Rng,
    /// Compact name keys taken, so unrelated entities never share a name by chance.
    names: HashSet<String>,
    domains: HashSet<String>,
    /// The countries each name is used in.
    lands_of: HashMap<String, Vec<&'static str>>,
    accounts: Vec<TestAccount>,
    entities: Vec<Entity>,
    /// The Accounts (indices into `accounts`) of each entity.
    entity_accounts: Vec<Vec<usize>>,
}

impl Generator {
    fn run(mut self, n_accounts: usize, n_incoming: usize) -> TestSet {
        while self.accounts.len() < n_accounts {
            let roll = self.rng.below(100);
            let e = self.fresh_entity();
            let first = self.add_entity(e);
            if roll < 6 {
                // The same name abroad: an unrelated company.
                let other = self.homonym_abroad(first);
                self.add_entity(other);
            } else if roll < 12 {
                // A subsidiary or division on the parent's domain.
                if let Some(sub) = self.subsidiary(first) {
                    self.add_entity(sub);
                }
            } else if roll < 15 {
                // An earlier duplicate: the same company entered twice.
                let acc = self.account_for(first);
                self.entity_accounts[first].push(self.accounts.len());
                self.accounts.push(acc);
            }
        }
        self.accounts.truncate(n_accounts);
        for list in &mut self.entity_accounts {
            list.retain(|&i| i < n_accounts);
        }
        let incoming = (0..n_incoming).map(|_| self.incoming()).collect();
        TestSet {
            accounts: self.accounts,
            incoming,
        }
    }

    fn fresh_entity(&mut self) -> Entity {
        loop {
            let land = self.rng.pick(LANDS);
            let core = if self.rng.pct(20) {
                format!(
                    "{} {}",
                    self.rng.pick(SURNAMES),
                    self.rng.pick(SURNAME_TAILS)
                )
            } else {
                let brand = format!(
                    "{}{}{}",
                    self.rng.pick(SYLLABLES_A),
                    self.rng.pick(SYLLABLES_B),
                    self.rng.pick(SYLLABLES_C)
                );
                if self.rng.pct(80) {
                    format!("{brand} {}", self.rng.pick(INDUSTRY))
                } else {
                    brand
                }
            };
            if !self.claim_name(&core) {
                continue;
            }
            let domain = self.rng.pct(85).then(|| self.fresh_domain(&core, land));
            let tax = self.rng.pct(60).then(|| self.tax_id(land));
            return Entity {
                core,
                form: land.forms[self.rng.below(land.forms.len())],
                land,
                domain: domain.flatten(),
                tax,
            };
        }
    }

    /// Takes a name for one entity; false if it is taken (homonyms are made on purpose, not
    /// by chance).
    fn claim_name(&mut self, core: &str) -> bool {
        self.names.insert(NameKey::new(core).compact().to_owned())
    }

    fn fresh_domain(&mut self, core: &str, land: &Land) -> Option<String> {
        let slug: String = deunicode::deunicode(core)
            .to_ascii_lowercase()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .take(2)
            .collect::<Vec<_>>()
            .join(if self.rng.pct(50) { "-" } else { "" });
        let tld = if self.rng.pct(30) { "com" } else { land.tld };
        let domain = format!("{slug}.{tld}");
        self.domains.insert(domain.clone()).then_some(domain)
    }

    fn tax_id(&mut self, land: &Land) -> String {
        let r = &mut self.rng;
        match land.code {
            "US" => {
                let d = r.digits(9);
                format!("{}-{}", &d[..2], &d[2..])
            }
            "GB" => format!("GB{}", r.digits(9)),
            "DE" => format!("DE{}", r.digits(9)),
            "FR" => format!("FR{}{}", r.digits(2), r.digits(9)),
            "ES" => format!("ESB{}", r.digits(8)),
            "IT" => format!("IT{}", r.digits(11)),
            "NL" => format!("NL{}B01", r.digits(9)),
            "SE" => format!("SE{}01", r.digits(10)),
            "CH" => {
                let d = r.digits(9);
                format!("CHE-{}.{}.{} MWST", &d[..3], &d[3..6], &d[6..])
            }
            "AT" => format!("ATU{}", r.digits(8)),
            "PL" => format!("PL{}", r.digits(10)),
            "DK" => format!("DK{}", r.digits(8)),
            "FI" => format!("FI{}", r.digits(8)),
            _ => r.digits(11),
        }
    }

    /// Writes a tax id another way: spaced, lower case, dotted or without its prefix.
    fn reformat_tax(&mut self, tax: &str, land: &Land) -> String {
        let compact: String = tax.chars().filter(char::is_ascii_alphanumeric).collect();
        let has_prefix = compact.starts_with(land.code) && land.code != "CH";
        match self.rng.below(4) {
            0 if has_prefix => compact[2..].to_owned(),
            1 => compact.to_lowercase(),
            2 => compact
                .as_bytes()
                .chunks(3)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(" "),
            _ => compact
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("."),
        }
    }

    fn add_entity(&mut self, e: Entity) -> usize {
        self.push_entity(e);
        let i = self.entities.len() - 1;
        let acc = self.account_for(i);
        self.entity_accounts.push(vec![self.accounts.len()]);
        self.accounts.push(acc);
        i
    }

    /// An unrelated company with entity `of`'s name in a country where no company of that name
    /// is yet: two same-named companies in one country with nothing else to tell them apart
    /// are what the name-and-country rule cannot see (README, "Limits").
    /// Records an entity and the country its name is now used in.
    fn push_entity(&mut self, e: Entity) {
        self.lands_of
            .entry(e.core.clone())
            .or_default()
            .push(e.land.code);
        self.entities.push(e);
    }

    fn homonym_abroad(&mut self, of: usize) -> Entity {
        let core = self.entities[of].core.clone();
        let taken = self.lands_of.get(&core).cloned().unwrap_or_default();
        let free: Vec<&'static Land> = LANDS.iter().filter(|l| !taken.contains(&l.code)).collect();
        let land = *self.rng.pick(&free);
        let domain = self.rng.pct(80).then(|| self.fresh_domain(&core, land));
        let tax = self.rng.pct(60).then(|| self.tax_id(land));
        Entity {
            form: land.forms[self.rng.below(land.forms.len())],
            core,
            land,
            domain: domain.flatten(),
            tax,
        }
    }

    fn subsidiary(&mut self, of: usize) -> Option<Entity> {
        let parent = &self.entities[of];
        let domain = parent.domain.clone()?;
        let core = format!("{} {}", parent.core, self.rng.pick(DIVISIONS));
        let land = if self.rng.pct(50) {
            parent.land
        } else {
            self.rng.pick(LANDS)
        };
        if !self.claim_name(&core) {
            return None;
        }
        let tax = self.rng.pct(60).then(|| self.tax_id(land));
        Some(Entity {
            core,
            form: land.forms[self.rng.below(land.forms.len())],
            land,
            domain: Some(domain),
            tax,
        })
    }

    /// An Account for entity `i`, as a sales rep typed it.
    fn account_for(&mut self, i: usize) -> TestAccount {
        let id = format!("001{:015}", self.accounts.len());
        let e = &self.entities[i];
        let (core, form, land) = (e.core.clone(), e.form, e.land);
        let (domain, tax) = (e.domain.clone(), e.tax.clone());
        let r = &mut self.rng;
        let name = if r.pct(15) {
            format!("{core} {form}").to_uppercase()
        } else if r.pct(20) {
            core.clone()
        } else {
            format!("{core} {form}")
        };
        let website = domain
            .as_ref()
            .filter(|_| r.pct(80))
            .map(|d| match r.below(4) {
                0 => format!("https://www.{d}"),
                1 => format!("www.{d}/"),
                2 => format!("http://shop.{d}/en"),
                _ => d.clone(),
            });
        let email_domain = domain.clone().filter(|_| r.pct(40));
        let billing_country = match r.below(10) {
            0 => None,
            1..=3 => Some(land.name.to_owned()),
            _ => Some(land.code.to_owned()),
        };
        let tax_id = tax.filter(|_| r.pct(85));
        let tax_id = match tax_id {
            Some(t) if r.pct(30) => Some(self.reformat_tax(&t, land)),
            t => t,
        };
        let n_contacts = 1 + self.rng.below(3);
        let contacts = (0..n_contacts)
            .map(|k| Contact {
                id: format!("003{:012}{k:03}", self.accounts.len()),
                email: self.email(domain.as_deref()),
            })
            .collect();
        TestAccount {
            account: Account {
                id,
                name,
                website,
                email_domain,
                tax_id,
                billing_country,
            },
            contacts,
        }
    }

    /// A person's address at `domain`, or at free-mail (sometimes a shared mailbox).
    fn email(&mut self, domain: Option<&str>) -> String {
        let r = &mut self.rng;
        let (f, l) = (r.pick(FIRST), r.pick(LAST));
        match domain {
            Some(d) if r.pct(85) => format!("{f}.{l}@{d}"),
            _ if r.pct(15) => (*r.pick(SHARED_MAILBOXES)).to_owned(),
            _ => format!("{f}.{l}{}@{}", r.below(100), r.pick(FREE_MAIL)),
        }
    }

    fn incoming(&mut self) -> Incoming {
        let roll = self.rng.below(100);
        if roll < 58 {
            self.true_match()
        } else if roll < 66 {
            self.ambiguous()
        } else {
            self.new_company()
        }
    }

    /// An entity with at least one Account, picked at random.
    fn some_entity(&mut self) -> usize {
        loop {
            let i = self.rng.below(self.entities.len());
            if !self.entity_accounts[i].is_empty() {
                return i;
            }
        }
    }

    fn true_match(&mut self) -> Incoming {
        let i = self.some_entity();
        let accounts = self.entity_accounts[i].clone();
        let mut company = self.company_like(i, &accounts);
        let mut scenario = "match";
        if self.rng.pct(12) {
            company.name = typo(&mut self.rng, &company.name);
            scenario = "match/typo";
        }
        let truth = if let [only] = accounts[..] {
            Truth::Match(self.accounts[only].account.id.clone())
        } else {
            scenario = "review/earlier-duplicate";
            Truth::Review
        };
        Incoming {
            company,
            truth,
            scenario,
        }
    }

    fn ambiguous(&mut self) -> Incoming {
        let i = self.some_entity();
        let accounts = self.entity_accounts[i].clone();
        let mut company = self.company_like(i, &accounts);
        let taxed = accounts
            .iter()
            .all(|&a| self.accounts[a].account.tax_id.is_some());
        let scenario = if taxed && self.rng.pct(70) {
            // Same name and domain, another tax id: a data error or a sister company.
            let land = self.entities[i].land;
            company.tax_id = Some(self.tax_id(land));
            company.country = Some(land.code.to_owned());
            if let Some(d) = &self.entities[i].domain {
                company.contact_emails = vec![format!("buyer@{d}")];
            }
            "review/tax-id-conflict"
        } else {
            // Nothing but the name: no country, free-mail, no tax id.
            company.country = None;
            company.tax_id = None;
            company.website = None;
            company.contact_emails = vec![self.email(None)];
            "review/name-only"
        };
        Incoming {
            company,
            truth: Truth::Review,
            scenario,
        }
    }

    fn new_company(&mut self) -> Incoming {
        let roll = self.rng.below(100);
        let (entity, scenario) = if roll < 55 {
            (self.fresh_entity(), "new/fresh")
        } else if roll < 70 {
            let of = self.some_entity();
            (self.homonym_abroad(of), "new/homonym-abroad")
        } else if roll < 80 {
            let of = self.some_entity();
            match self.subsidiary(of) {
                Some(sub) => (sub, "new/subsidiary-on-parent-domain"),
                None => (self.fresh_entity(), "new/fresh"),
            }
        } else if roll < 90 {
            // A fresh company whose tax number has the digits of an Account's abroad.
            let mut e = self.fresh_entity();
            let of = self.some_entity();
            let other = &self.entities[of];
            if let (Some(t), false) = (&other.tax, other.land.code == "US") {
                e.land = &LANDS[0];
                e.tax = Some(t.chars().filter(char::is_ascii_digit).collect());
            }
            (e, "new/same-tax-digits-abroad")
        } else {
            // A fresh small business whose bookkeeper's shared mailbox is on other Accounts.
            let mut e = self.fresh_entity();
            e.domain = None;
            (e, "new/shared-free-mailbox")
        };
        let shared = scenario == "new/shared-free-mailbox";
        self.push_entity(entity);
        let i = self.entities.len() - 1;
        self.entity_accounts.push(Vec::new());
        let mut company = self.company_like(i, &[]);
        if shared {
            company
                .contact_emails
                .push((*self.rng.pick(SHARED_MAILBOXES)).to_owned());
        }
        Incoming {
            company,
            truth: Truth::New,
            scenario,
        }
    }

    /// Entity `i` as a buyer types it into Shopify: the name rewritten, contacts at the
    /// domain or free-mail (some already Contacts of `accounts`), the tax id reformatted or
    /// left out, the country sometimes missing.
    fn company_like(&mut self, i: usize, accounts: &[usize]) -> Company {
        let (core, form, land) = {
            let e = &self.entities[i];
            (e.core.clone(), e.form, e.land)
        };
        let (domain, tax) = (
            self.entities[i].domain.clone(),
            self.entities[i].tax.clone(),
        );
        let name = vary_name(&mut self.rng, &core, form);
        let mut emails = Vec::new();
        let free_only = self.rng.pct(20);
        for _ in 0..1 + self.rng.below(3) {
            let known: Vec<&Contact> = accounts
                .iter()
                .flat_map(|&a| &self.accounts[a].contacts)
                .collect();
            if !known.is_empty() && self.rng.pct(40) {
                let c = self.rng.pick(&known);
                emails.push(if self.rng.pct(30) {
                    c.email.to_uppercase()
                } else {
                    c.email.clone()
                });
            } else if free_only {
                emails.push(self.email(None));
            } else {
                emails.push(self.email(domain.as_deref()));
            }
        }
        let tax_id = match tax {
            Some(t) if self.rng.pct(55) => Some(self.reformat_tax(&t, land)),
            _ => None,
        };
        let country = match self.rng.below(10) {
            0..=1 => None,
            2 => Some(land.name.to_owned()),
            _ => Some(land.code.to_owned()),
        };
        let website = domain
            .filter(|_| self.rng.pct(25))
            .map(|d| format!("https://{d}/"));
        Company {
            name,
            contact_emails: emails,
            tax_id,
            country,
            website,
        }
    }
}

/// The name `core` + legal `form` written the way people write it.
fn vary_name(r: &mut Rng, core: &str, form: &str) -> String {
    let mut core = core.to_owned();
    if r.pct(20) {
        core = deunicode::deunicode(&core);
    }
    if r.pct(30) {
        core = if core.contains('&') {
            core.replace('&', "and")
        } else {
            core.replace(" and ", " & ")
        };
    }
    for (long, short) in [
        ("International", "Intl."),
        ("Manufacturing", "Mfg"),
        ("Brothers", "Bros."),
        ("Services", "Svcs"),
        ("Center", "Ctr"),
    ] {
        if r.pct(50) {
            core = core.replace(long, short);
        }
    }
    if r.pct(10) {
        core = core.replacen(' ', "-", 1);
    }
    let form = match r.below(4) {
        0 => "".to_owned(),
        1 => form.to_owned(),
        _ => (*r.pick(form_variants(form))).to_owned(),
    };
    let mut name = if form.starts_with(',') {
        format!("{core}{form}")
    } else {
        format!("{core} {form}")
    };
    if r.pct(8) {
        name = format!("The {name}");
    }
    match r.below(10) {
        0 => name.to_uppercase(),
        1 => name.to_lowercase(),
        _ => name,
    }
    .trim()
    .to_owned()
}

/// One slip of the keyboard in the longest word: two letters swapped or one dropped.
fn typo(r: &mut Rng, name: &str) -> String {
    let words: Vec<&str> = name.split(' ').collect();
    let (wi, word) = words
        .iter()
        .enumerate()
        .max_by_key(|(_, w)| w.chars().count())
        .map(|(i, w)| (i, *w))
        .unwrap_or((0, name));
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() >= 4 {
        let at = 1 + r.below(chars.len() - 2);
        if r.pct(50) {
            chars.swap(at, at + 1);
        } else {
            chars.remove(at);
        }
    }
    let typed: String = chars.into_iter().collect();
    words
        .iter()
        .enumerate()
        .map(|(i, w)| if i == wi { typed.as_str() } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}
