//! Company names reduced to a comparable key: no case, accents, punctuation, legal form or
//! leading "The", `&`/`+` read as "and" and dropped, common abbreviations written out.

use std::fmt;

/// A normalised company name: `"The Müller & Söhne GmbH & Co. KG"` → `"muller sohne"`.
///
/// Two names are the *same* when their keys without spaces are equal (`Wal-Mart` = `Walmart`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NameKey {
    tokens: Vec<String>,
    compact: String,
}

impl NameKey {
    /// Normalises a raw company name.
    pub fn new(raw: &str) -> NameKey {
        let tokens = tokens(raw);
        let compact = tokens.concat();
        NameKey { tokens, compact }
    }

    /// The key's words.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The key without spaces, the form compared for equality.
    pub fn compact(&self) -> &str {
        &self.compact
    }

    /// Whether the name normalised to nothing (empty, or only a legal form such as "Inc.").
    pub fn is_empty(&self) -> bool {
        self.compact.is_empty()
    }

    /// How `self` and `other` compare; [`NameMatch::Different`] when either is empty.
    pub fn compare(&self, other: &NameKey) -> NameMatch {
        if self.is_empty() || other.is_empty() {
            return NameMatch::Different;
        }
        if self.compact == other.compact {
            return NameMatch::Same;
        }
        // Names differing in their numbers ("Unit 4" / "Unit 5", "Route 66 Diner" / "Route 67
        // Diner") are different businesses however close the letters are.
        if digits(&self.compact) != digits(&other.compact) {
            return NameMatch::Different;
        }
        let (a, b) = (self.compact.as_str(), other.compact.as_str());
        let shorter = a.len().min(b.len());
        let distance = strsim::damerau_levenshtein(a, b);
        if self.tokens.len() == other.tokens.len()
            && ((shorter >= 6 && distance == 1) || (shorter >= 12 && distance == 2))
        {
            return NameMatch::Typo;
        }
        let score = strsim::jaro_winkler(a, b);
        if score >= SIMILAR_JARO_WINKLER
            || self.words_contained_in(other)
            || other.words_contained_in(self)
            || self.is_acronym_of(other)
            || other.is_acronym_of(self)
        {
            return NameMatch::Similar;
        }
        NameMatch::Different
    }

    /// Every word of `self` is a word of `other` and `self` has a word of 4 letters or more:
    /// "Norvex" in "Norvex Logistics".
    fn words_contained_in(&self, other: &NameKey) -> bool {
        self.tokens.iter().any(|t| t.len() >= 4)
            && self.tokens.iter().all(|t| other.tokens.contains(t))
    }

    /// `self` is one word spelling the initials of `other`'s three or more words: "IBM" for
    /// "International Business Machines".
    fn is_acronym_of(&self, other: &NameKey) -> bool {
        self.tokens.len() == 1
            && other.tokens.len() >= 3
            && self.compact.len() == other.tokens.len()
            && other
                .tokens
                .iter()
                .zip(self.compact.bytes())
                .all(|(t, c)| t.as_bytes()[0] == c)
    }
}

impl fmt::Display for NameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tokens.join(" "))
    }
}

/// How two normalised names compare, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NameMatch {
    /// Equal keys.
    Same,
    /// One or two letters apart (an edit, or two for names of 12 letters or more): a typo.
    Typo,
    /// Close (Jaro-Winkler ≥ 0.90), one name's words inside the other's, or an acronym.
    Similar,
    /// Unrelated, or different numbers.
    Different,
}

/// Jaro-Winkler score from which two keys count as similar (review, never a link on its own).
const SIMILAR_JARO_WINKLER: f64 = 0.90;

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn tokens(raw: &str) -> Vec<String> {
    let ascii = deunicode::deunicode(raw).to_ascii_lowercase();
    let mut cleaned = String::with_capacity(ascii.len());
    for c in ascii.chars() {
        match c {
            'a'..='z' | '0'..='9' => cleaned.push(c),
            // "L.L.C." → "llc", "O'Neil" → "oneil".
            '.' | '\'' | '`' => {}
            '&' | '+' => cleaned.push_str(" and "),
            _ => cleaned.push(' '),
        }
    }
    let mut words: Vec<String> = Vec::new();
    // Whether the last word was built from single letters only, so another joins it:
    // "S A" → "sa", "I B M" → "ibm".
    let mut letter_run = false;
    for word in cleaned.split_whitespace() {
        let word = expand(word);
        let single = word.len() == 1 && word.as_bytes()[0].is_ascii_alphabetic();
        match words.last_mut() {
            Some(last) if single && letter_run => last.push_str(word),
            _ => words.push(word.to_owned()),
        }
        letter_run = single;
    }
    words.retain(|w| w != "and");
    if words.len() > 1 && words[0] == "the" {
        words.remove(0);
    }
    // Legal forms come off the end, several if stacked ("GmbH & Co. KG"), never the last word.
    while let Some(n) = LEGAL_FORMS
        .iter()
        .filter(|form| form.len() < words.len() && ends_with(&words, form))
        .map(|form| form.len())
        .max()
        .or_else(|| {
            (words.len() > 1 && is_misspelt_legal_form(&words[words.len() - 1])).then_some(1)
        })
    {
        words.truncate(words.len() - n);
    }
    words
}

/// A word one edit from a long legal form ("Incorported", "Limted", "Coporation"): long forms
/// are where typos land, and no brand is one letter from "incorporated".
fn is_misspelt_legal_form(word: &str) -> bool {
    ["incorporated", "corporation", "limited", "company"]
        .iter()
        .any(|form| strsim::damerau_levenshtein(word, form) == 1)
}

fn ends_with(words: &[String], form: &[&str]) -> bool {
    words[words.len() - form.len()..]
        .iter()
        .zip(form)
        .all(|(w, f)| w == f)
}

/// Abbreviations written out, and spellings made one ("centre" → "center").
fn expand(word: &str) -> &str {
    match word {
        "intl" | "int" | "internat" => "international",
        "mfg" | "manuf" => "manufacturing",
        "bros" => "brothers",
        "assoc" | "assocs" => "associates",
        "svc" | "svcs" | "serv" => "services",
        "natl" => "national",
        "mgmt" => "management",
        "grp" => "group",
        "hldgs" | "hldg" => "holdings",
        "dept" => "department",
        "ctr" | "centre" => "center",
        "labs" => "laboratories",
        "sys" => "systems",
        "cie" => "co",
        "und" | "et" => "and",
        other => other,
    }
}

/// Legal forms as word sequences after normalisation ("S.A." and "S. A." are both `sa`).
const LEGAL_FORMS: &[&[&str]] = &[
    &["inc"],
    &["incorporated"],
    &["llc"],
    &["lc"],
    &["llp"],
    &["lp"],
    &["pllc"],
    &["pc"],
    &["ltd"],
    &["limited"],
    &["plc"],
    &["corp"],
    &["corporation"],
    &["co"],
    &["company"],
    &["pty"],
    &["pte"],
    &["gmbh"],
    &["mbh"],
    &["ag"],
    &["kg"],
    &["kgaa"],
    &["ohg"],
    &["gbr"],
    &["ug"],
    &["haftungsbeschrankt"],
    &["ev"],
    &["eg"],
    &["sa"],
    &["sas"],
    &["sasu"],
    &["sarl"],
    &["eurl"],
    &["sca"],
    &["sl"],
    &["slu"],
    &["sau"],
    &["spa"],
    &["srl"],
    &["snc"],
    &["bv"],
    &["nv"],
    &["vof"],
    &["cv"],
    &["bvba"],
    &["sprl"],
    &["oy"],
    &["oyj"],
    &["ab"],
    &["publ"],
    &["as"],
    &["asa"],
    &["aps"],
    &["sro"],
    &["kft"],
    &["zrt"],
    &["se"],
    &["sp", "z", "oo"],
    &["sp", "zoo"],
    // "GmbH u. Co. KG": `u` is "und", left over once "co" and "kg" are gone.
    &["u", "co"],
    &["spzoo"],
    &["sp", "k"],
    &["lda"],
    &["bhd"],
    &["sdn", "bhd"],
    &["kk"],
];

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> String {
        NameKey::new(raw).to_string()
    }

    #[test]
    fn case_accents_punctuation_and_ampersands_do_not_matter() {
        assert_eq!(key("The Müller & Söhne GmbH & Co. KG"), "muller sohne");
        assert_eq!(key("MULLER and SOHNE"), "muller sohne");
        assert_eq!(key("Café Crème, S.A.R.L."), "cafe creme");
        assert_eq!(key("O’Neil-Smith  Bros."), "oneil smith brothers");
        assert_eq!(key("Société Générale S.A."), "societe generale");
    }

    #[test]
    fn legal_forms_come_off_the_end_in_every_spelling() {
        let want = "acme tools";
        for raw in [
            "Acme Tools Inc",
            "Acme Tools, Inc.",
            "ACME TOOLS INCORPORATED",
            "Acme Tools LLC",
            "Acme Tools L.L.C.",
            "Acme Tools Ltd",
            "Acme Tools Limited",
            "Acme Tools GmbH",
            "Acme Tools AG",
            "Acme Tools S.A.",
            "Acme Tools S. A.",
            "Acme Tools SA",
            "Acme Tools SAS",
            "Acme Tools SARL",
            "Acme Tools S.L.",
            "Acme Tools B.V.",
            "Acme Tools N.V.",
            "Acme Tools Pty Ltd",
            "Acme Tools Pty. Ltd.",
            "Acme Tools PLC",
            "Acme Tools Corp.",
            "Acme Tools Corporation",
            "Acme Tools Co.",
            "Acme Tools & Co",
            "Acme Tools Company",
            "Acme Tools KG",
            "Acme Tools GmbH u. Co. KG",
            "Acme Tools OHG",
            "Acme Tools Oy",
            "Acme Tools AB",
            "Acme Tools AS",
            "Acme Tools ApS",
            "Acme Tools S.p.A.",
            "Acme Tools S.r.l.",
            "Acme Tools Sp. z o.o.",
            "Acme Tools sp. z o. o.",
            "The Acme Tools Company Ltd",
        ] {
            assert_eq!(key(raw), want, "{raw}");
        }
    }

    #[test]
    fn a_misspelt_long_legal_form_comes_off_too() {
        assert_eq!(key("Acme Tools Inocrporated"), "acme tools");
        assert_eq!(key("Acme Tools Limted"), "acme tools");
        assert_eq!(key("Acme Tools Coporation"), "acme tools");
    }

    #[test]
    fn a_name_that_is_only_a_legal_form_keeps_its_word() {
        assert_eq!(key("Company"), "company");
        assert_eq!(key("The Co"), "co");
        assert!(NameKey::new("  , . ").is_empty());
    }

    #[test]
    fn abbreviations_and_initials_are_written_one_way() {
        assert_eq!(key("Acme Intl."), key("ACME International"));
        assert_eq!(key("Smith Mfg"), key("Smith Manufacturing"));
        assert_eq!(key("J. P. Morgan"), "jp morgan");
        assert_eq!(key("Harbour Centre"), key("Harbour Ctr"));
    }

    #[test]
    fn comparison_grades_names() {
        let cmp = |a: &str, b: &str| NameKey::new(a).compare(&NameKey::new(b));
        assert_eq!(
            cmp("Wal-Mart Stores", "Walmart Stores Inc"),
            NameMatch::Same
        );
        assert_eq!(
            cmp("Nordwind Logistik", "Nordwind Logistk"),
            NameMatch::Typo
        );
        assert_eq!(
            cmp("Acme", "Acmee"),
            NameMatch::Similar,
            "too short for a typo"
        );
        assert_eq!(cmp("Norvex", "Norvex Logistics"), NameMatch::Similar);
        assert_eq!(
            cmp("IBM", "International Business Machines"),
            NameMatch::Similar
        );
        assert_eq!(
            cmp("Route 66 Diner", "Route 67 Diner"),
            NameMatch::Different
        );
        assert_eq!(cmp("Acme Tools", "Zenith Foods"), NameMatch::Different);
        assert_eq!(cmp("&", " & "), NameMatch::Different, "empty keys");
    }
}
