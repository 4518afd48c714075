//! Email and website domains reduced to the registrable domain (`shop.acme.co.uk` → `acme.co.uk`),
//! and the free-mail domains that say nothing about which company a person works for.

use std::fmt;

/// A registrable domain that is not a free-mail provider's: evidence of a company.
///
/// Only [`business_domain`] builds one, so holding a `Domain` means it may be compared.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// The lower-case registrable domain, e.g. `acme.co.uk`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The registrable domain of an email address, a URL or a host name, lower-cased, without
/// `www.`; `None` when the input holds no usable host (no dot, bad characters, a bare public
/// suffix such as `co.uk`).
pub fn registrable_domain(input: &str) -> Option<String> {
    let s = input.trim().to_ascii_lowercase();
    let s = match s.rsplit_once('@') {
        Some((_, host)) => host,
        None => s.split_once("://").map_or(s.as_str(), |(_, rest)| rest),
    };
    let host = s
        .split(['/', '?', '#', ':'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('.');
    let host = host.strip_prefix("www.").unwrap_or(host);
    let valid = host.contains('.')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !host.split('.').any(str::is_empty);
    if !valid {
        return None;
    }
    psl::domain_str(host).map(str::to_owned)
}

/// The registrable domain of `input` when it can identify a company: `None` for free-mail
/// providers (gmail.com, yahoo.co.uk, web.de, …) and for inputs with no usable host.
pub fn business_domain(input: &str) -> Option<Domain> {
    let domain = registrable_domain(input)?;
    (!is_free_mail(&domain)).then_some(Domain(domain))
}

/// Whether a registrable domain belongs to a free-mail or consumer ISP provider, whose
/// addresses are shared by unrelated people and so never match a company.
pub fn is_free_mail(registrable: &str) -> bool {
    let label = registrable.split('.').next().unwrap_or_default();
    FREE_MAIL_FAMILIES.contains(&label) || FREE_MAIL_DOMAINS.contains(&registrable)
}

/// Providers present under many country suffixes: any registrable domain whose first label is
/// one of these (yahoo.de, hotmail.fr, outlook.com.au, gmx.at, …).
const FREE_MAIL_FAMILIES: &[&str] = &[
    "aol",
    "gmail",
    "gmx",
    "googlemail",
    "hotmail",
    "icloud",
    "live",
    "msn",
    "outlook",
    "proton",
    "protonmail",
    "rocketmail",
    "tutanota",
    "yahoo",
    "yandex",
    "ymail",
    "zoho",
];

/// Single free-mail and consumer ISP domains.
const FREE_MAIL_DOMAINS: &[&str] = &[
    "126.com",
    "139.com",
    "163.com",
    "alice.it",
    "bigpond.com",
    "bluewin.ch",
    "btinternet.com",
    "comcast.net",
    "daum.net",
    "fastmail.com",
    "free.fr",
    "freenet.de",
    "hey.com",
    "laposte.net",
    "libero.it",
    "mac.com",
    "mail.com",
    "mail.ru",
    "me.com",
    "naver.com",
    "o2.pl",
    "onet.pl",
    "orange.fr",
    "pm.me",
    "qq.com",
    "rambler.ru",
    "rediffmail.com",
    "sbcglobal.net",
    "seznam.cz",
    "sfr.fr",
    "shaw.ca",
    "sina.com",
    "t-online.de",
    "telenet.be",
    "tiscali.it",
    "tuta.io",
    "verizon.net",
    "virgilio.it",
    "wanadoo.fr",
    "web.de",
    "wp.pl",
    "xs4all.nl",
    "yeah.net",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_urls_and_hosts_reduce_to_the_registrable_domain() {
        assert_eq!(
            registrable_domain("Jane@Sales.ACME.co.uk").as_deref(),
            Some("acme.co.uk")
        );
        assert_eq!(
            registrable_domain("https://www.acme.com/contact?x=1").as_deref(),
            Some("acme.com")
        );
        assert_eq!(
            registrable_domain("shop.acme.de:443").as_deref(),
            Some("acme.de")
        );
        assert_eq!(registrable_domain("acme.com.").as_deref(), Some("acme.com"));
    }

    #[test]
    fn unusable_hosts_give_none() {
        for bad in [
            "",
            "acme",
            "co.uk",
            "jane@",
            "acme..com",
            "ac me.com",
            "http://",
        ] {
            assert_eq!(registrable_domain(bad), None, "{bad}");
        }
    }

    #[test]
    fn free_mail_never_makes_a_business_domain() {
        for free in [
            "a@gmail.com",
            "a@googlemail.com",
            "a@yahoo.co.uk",
            "a@hotmail.fr",
            "a@outlook.com.au",
            "a@live.de",
            "a@icloud.com",
            "a@me.com",
            "a@aol.com",
            "a@gmx.at",
            "a@web.de",
            "a@proton.me",
            "a@protonmail.com",
            "a@yandex.ru",
            "a@mail.ru",
            "a@qq.com",
            "a@163.com",
        ] {
            assert_eq!(business_domain(free), None, "{free}");
        }
        assert_eq!(
            business_domain("a@mail.acme-tools.com").map(|d| d.to_string()),
            Some("acme-tools.com".into())
        );
    }
}
