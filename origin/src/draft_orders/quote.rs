//! A quote as submitted (`POST /v1/draft-orders`, `origin draft-orders create --file`), its
//! structural checks, and the errors a quote is rejected with.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wholesail_webhook::{Gid, ShopDomain};

use super::CallbackPolicy;
use crate::rules::quote::{MAX_AMOUNT, MAX_LINE_QUANTITY};

/// Most lines one quote may carry (a quote of this size becomes ~100 drafts).
pub const MAX_QUOTE_LINES: usize = 50_000;

/// A quote for a company location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// The shop's myshopify domain (one of the configured `[[shops]]`).
    pub shop: ShopDomain,
    /// The caller's quote id; a quote id is used once per shop (resubmitting it returns the
    /// existing job).
    pub quote_id: String,
    /// The buyer: `gid://shopify/CompanyLocation/<id>`.
    pub company_location_id: String,
    /// The buyer's contact (`gid://shopify/CompanyContact/<id>`): with it the drafts are
    /// B2B drafts (`purchasingEntity.purchasingCompany` with the location's company).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_contact_id: Option<String>,
    /// The lines, in the order the buyer sees them.
    pub lines: Vec<QuoteLine>,
    /// One shipping charge for the whole quote (see the shipping rule in the README).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping: Option<ShippingCharge>,
    /// A note copied onto every draft.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Where to POST the job's final status (signed), if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Email each draft's invoice (checkout link) to the buyer once all drafts exist.
    #[serde(default)]
    pub send_invoice: bool,
}

/// One quote line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteLine {
    /// The variant's numeric Shopify id.
    pub variant_id: u64,
    /// Units.
    pub quantity: u32,
}

/// The quote's shipping charge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingCharge {
    /// Shown on the draft, e.g. "Freight".
    pub title: String,
    /// Decimal amount in the shop's currency, at most two decimals, e.g. `"250.00"`.
    pub price: String,
}

/// Why (part of) a quote is not acceptable: a structural problem found at submission, a rule
/// violation found by the rules' validators, or a price a draft order cannot express.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteViolation {
    /// Stable code: the rules' codes (`CASE_PACK`, `MIN_QUANTITY`, …) or this module's
    /// (`INVALID_FIELD`, `INVALID_QUANTITY`, `TOO_MANY_LINES`, `PRICE_ABOVE_LIST`,
    /// `AMOUNT_TOO_LARGE`).
    pub code: String,
    /// The quote line (0-based) it is about; `None` for the quote as a whole.
    pub line: Option<usize>,
    /// What is wrong, for people.
    pub message: String,
}

impl QuoteViolation {
    fn quote(code: &str, message: impl Into<String>) -> Self {
        QuoteViolation {
            code: code.into(),
            line: None,
            message: message.into(),
        }
    }
}

/// The job id (and drafts' group id) of a quote: `dq_` and 20 hex digits of
/// SHA-256(shop, quote id). The same quote always gets the same id.
pub fn job_id(shop: &ShopDomain, quote_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(shop.as_str().as_bytes());
    h.update([0]);
    h.update(quote_id.as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("dq_{hex}")
}

/// Parses a decimal amount with at most two decimals into cents.
pub fn parse_cents(amount: &str) -> Option<u64> {
    let (whole, frac) = amount.trim().split_once('.').unwrap_or((amount.trim(), ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 2 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac: u64 = format!("{frac:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac)
}

impl QuoteRequest {
    /// Every structural problem (all of them, not the first): missing ids, no lines, too
    /// many lines, zero quantities, a malformed shipping price, a callback URL `callbacks`
    /// refuses.
    pub fn check(&self, callbacks: &CallbackPolicy) -> Vec<QuoteViolation> {
        let mut errors = Vec::new();
        if self.quote_id.trim().is_empty() || self.quote_id.len() > 100 {
            errors.push(QuoteViolation::quote(
                "INVALID_FIELD",
                "quote_id must be 1 to 100 characters",
            ));
        }
        if Gid::number_of(&self.company_location_id, "CompanyLocation").is_err() {
            errors.push(QuoteViolation::quote(
                "INVALID_FIELD",
                "company_location_id must be a gid://shopify/CompanyLocation/<id>",
            ));
        }
        if let Some(contact) = &self.company_contact_id {
            if Gid::number_of(contact, "CompanyContact").is_err() {
                errors.push(QuoteViolation::quote(
                    "INVALID_FIELD",
                    "company_contact_id must be a gid://shopify/CompanyContact/<id>",
                ));
            }
        }
        if self.lines.is_empty() {
            errors.push(QuoteViolation::quote(
                "INVALID_FIELD",
                "a quote needs at least one line",
            ));
        }
        if self.lines.len() > MAX_QUOTE_LINES {
            errors.push(QuoteViolation::quote(
                "TOO_MANY_LINES",
                format!(
                    "a quote may have at most {MAX_QUOTE_LINES} lines, this one has {}",
                    self.lines.len()
                ),
            ));
        }
        for (i, line) in self.lines.iter().enumerate() {
            if line.quantity == 0 {
                errors.push(QuoteViolation {
                    code: "INVALID_QUANTITY".into(),
                    line: Some(i),
                    message: format!("line {i}: quantity must be at least 1"),
                });
            }
            if line.quantity > MAX_LINE_QUANTITY {
                errors.push(QuoteViolation {
                    code: "INVALID_QUANTITY".into(),
                    line: Some(i),
                    message: format!("line {i}: quantity must be at most {MAX_LINE_QUANTITY}"),
                });
            }
        }
        if let Some(s) = &self.shipping {
            let price = parse_cents(&s.price).filter(|c| *c <= MAX_AMOUNT);
            if s.title.trim().is_empty() || price.is_none() {
                errors.push(QuoteViolation::quote(
                    "INVALID_FIELD",
                    "shipping needs a title and a price like \"25.00\"",
                ));
            }
        }
        if let Some(refusal) = self
            .callback_url
            .as_deref()
            .and_then(|u| callbacks.refusal(u))
        {
            errors.push(QuoteViolation::quote("INVALID_FIELD", refusal));
        }
        errors
    }

    /// The shipping charge in cents (0 without one). Only valid after [`Self::check`].
    pub fn shipping_cents(&self) -> u64 {
        self.shipping
            .as_ref()
            .and_then(|s| parse_cents(&s.price))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote() -> QuoteRequest {
        QuoteRequest {
            shop: shop("acme.myshopify.com"),
            quote_id: "Q-1".into(),
            company_location_id: "gid://shopify/CompanyLocation/42".into(),
            company_contact_id: None,
            lines: vec![QuoteLine {
                variant_id: 1,
                quantity: 3,
            }],
            shipping: None,
            note: None,
            callback_url: None,
            send_invoice: false,
        }
    }

    #[test]
    fn every_structural_error_is_reported_at_once() {
        let mut q = quote();
        q.company_location_id = "42".into();
        q.lines.push(QuoteLine {
            variant_id: 2,
            quantity: 0,
        });
        q.lines.push(QuoteLine {
            variant_id: 3,
            quantity: 0,
        });
        q.shipping = Some(ShippingCharge {
            title: "Freight".into(),
            price: "12.345".into(),
        });
        q.callback_url = Some("https://erp.example/cb".into());
        let errors = q.check(&CallbackPolicy::default());
        let codes: Vec<(&str, Option<usize>)> =
            errors.iter().map(|e| (e.code.as_str(), e.line)).collect();
        assert_eq!(
            codes,
            vec![
                ("INVALID_FIELD", None),
                ("INVALID_QUANTITY", Some(1)),
                ("INVALID_QUANTITY", Some(2)),
                ("INVALID_FIELD", None),
                ("INVALID_FIELD", None),
            ]
        );
        assert!(quote().check(&CallbackPolicy::default()).is_empty());
    }

    #[test]
    fn amounts_parse_to_exact_cents() {
        assert_eq!(parse_cents("25"), Some(2500));
        assert_eq!(parse_cents("25.5"), Some(2550));
        assert_eq!(parse_cents("0.07"), Some(7));
        assert_eq!(parse_cents("1.005"), None);
        assert_eq!(parse_cents("-1"), None);
        assert_eq!(parse_cents("1e3"), None);
    }

    fn shop(domain: &str) -> ShopDomain {
        ShopDomain::parse(domain).unwrap()
    }

    #[test]
    fn the_job_id_depends_on_shop_and_quote_only() {
        let a = job_id(&shop("acme.myshopify.com"), "Q-1");
        assert_eq!(a, job_id(&shop("acme.myshopify.com"), "Q-1"));
        assert_ne!(a, job_id(&shop("acme.myshopify.com"), "Q-2"));
        assert_ne!(a, job_id(&shop("other.myshopify.com"), "Q-1"));
        assert_eq!(a.len(), 23);
    }
}
