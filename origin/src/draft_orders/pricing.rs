//! The seam to the rules ([`crate::rules::quote::price_and_validate`]): prices a quote's
//! lines for the buyer (negotiated prices, serving warehouse) and runs every validator.
//! Unknown variants and an unknown company location reject the quote like rule violations do,
//! every unknown variant listed.

use sqlx::PgPool;
use wholesail_rules::Target;

use super::plan::Line;
use super::quote::{QuoteRequest, QuoteViolation};
use crate::rules::quote::{price_and_validate, QuoteError, QuoteLine};

/// A priced, valid quote.
#[derive(Debug, Clone)]
pub struct Priced {
    /// Shop currency.
    pub currency: String,
    /// The lines with list and negotiated prices, in quote order.
    pub lines: Vec<Line>,
}

/// Why pricing could not run.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// The database failed (transient).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The stored rules are unusable (permanent until an operator fixes them).
    #[error("rules: {0}")]
    Rules(String),
}

/// Prices and validates `quote`: `Ok(Err(violations))` lists every reason to reject it.
pub async fn price(
    pool: &PgPool,
    quote: &QuoteRequest,
) -> Result<Result<Priced, Vec<QuoteViolation>>, PricingError> {
    let lines: Vec<QuoteLine> = quote
        .lines
        .iter()
        .map(|l| QuoteLine {
            variant_id: l.variant_id,
            quantity: l.quantity,
        })
        .collect();
    match price_and_validate(pool, &quote.shop, &quote.company_location_id, &lines).await {
        Ok(Ok(priced)) => Ok(Ok(Priced {
            currency: priced.currency,
            lines: priced.lines,
        })),
        Ok(Err(violations)) => Ok(Err(violations
            .into_iter()
            .map(|v| QuoteViolation {
                code: v.code.as_str().to_owned(),
                line: match v.target {
                    Target::Line(i) => Some(i),
                    Target::Cart => None,
                },
                message: v.message,
            })
            .collect())),
        Err(QuoteError::Database(e)) => Err(PricingError::Database(e)),
        Err(QuoteError::UnknownLocation(gid)) => Ok(Err(vec![QuoteViolation {
            code: "UNKNOWN_LOCATION".into(),
            line: None,
            message: format!("company location {gid} is not known in this shop"),
        }])),
        Err(QuoteError::UnknownVariant(_)) => Ok(Err(unknown_variants(pool, quote).await?)),
        Err(e @ (QuoteError::ZeroQuantity(i) | QuoteError::QuantityTooLarge(i))) => {
            Ok(Err(vec![QuoteViolation {
                code: "INVALID_QUANTITY".into(),
                line: Some(i),
                message: e.to_string(),
            }]))
        }
        Err(e @ QuoteError::AmountTooLarge(i)) => Ok(Err(vec![QuoteViolation {
            code: "AMOUNT_TOO_LARGE".into(),
            line: Some(i),
            message: e.to_string(),
        }])),
        Err(e @ QuoteError::Rules(_)) => Err(PricingError::Rules(e.to_string())),
    }
}

/// The `purchasingEntity` of the drafts when the quote names the buyer's contact:
/// `{"purchasingCompany": {companyId, companyContactId, companyLocationId}}`, the company
/// being the location's. `Ok(Err(_))` when the location's company is not known.
pub async fn purchasing_entity(
    pool: &PgPool,
    quote: &QuoteRequest,
) -> Result<Result<Option<serde_json::Value>, QuoteViolation>, sqlx::Error> {
    let Some(contact) = &quote.company_contact_id else {
        return Ok(Ok(None));
    };
    let company = sqlx::query_scalar!(
        "SELECT company_admin_graphql_api_id FROM company_locations
         WHERE shop = $1 AND admin_graphql_api_id = $2 AND deleted_at IS NULL",
        quote.shop.as_str(),
        quote.company_location_id
    )
    .fetch_optional(pool)
    .await?
    .flatten();
    Ok(match company {
        Some(company) => Ok(Some(serde_json::json!({"purchasingCompany": {
            "companyId": company,
            "companyContactId": contact,
            "companyLocationId": quote.company_location_id,
        }}))),
        None => Err(QuoteViolation {
            code: "UNKNOWN_COMPANY".into(),
            line: None,
            message: format!(
                "the company of location {} is not known: cannot attach the drafts to it",
                quote.company_location_id
            ),
        }),
    })
}

/// One violation per line whose variant is not in the catalog with a price (the rules stop
/// at the first).
async fn unknown_variants(
    pool: &PgPool,
    quote: &QuoteRequest,
) -> Result<Vec<QuoteViolation>, sqlx::Error> {
    let ids: Vec<i64> = quote
        .lines
        .iter()
        .map(|l| i64::try_from(l.variant_id).unwrap_or(-1))
        .collect();
    let known = sqlx::query_scalar!(
        "SELECT id FROM variants WHERE shop = $1 AND id = ANY($2) AND price IS NOT NULL",
        quote.shop.as_str(),
        &ids
    )
    .fetch_all(pool)
    .await?;
    let known: std::collections::HashSet<i64> = known.into_iter().collect();
    Ok(quote
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !i64::try_from(l.variant_id).is_ok_and(|id| known.contains(&id)))
        .map(|(i, l)| QuoteViolation {
            code: "UNKNOWN_VARIANT".into(),
            line: Some(i),
            message: format!(
                "line {i}: product variant {} is not in the catalog",
                l.variant_id
            ),
        })
        .collect())
}
