//! What an operator types into a trace: a Shopify GID, an order name, an email or a SKU.

use serde::Serialize;
use wholesail_webhook::gid::{numeric_id, Gid};

use super::TraceError;

/// A parsed trace query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Query {
    /// `gid://shopify/<Kind>/<id>` of a kind the trace knows ([`GidKind`]).
    Gid {
        /// The record kind.
        kind: GidKind,
        /// The GID as typed.
        gid: String,
        /// Its numeric id.
        id: i64,
    },
    /// An order name, `#1042` (the `#` is added when missing from `name:1042`).
    OrderName {
        /// The name, with its `#`.
        name: String,
    },
    /// A customer email (compared case-insensitively).
    Email {
        /// The email, lower-cased.
        email: String,
    },
    /// A variant SKU (exact).
    Sku {
        /// The SKU.
        sku: String,
    },
}

/// The GID kinds a trace follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum GidKind {
    /// `Order`.
    Order,
    /// `Customer`.
    Customer,
    /// `Product`.
    Product,
    /// `ProductVariant`.
    ProductVariant,
    /// `Company`.
    Company,
    /// `CompanyLocation`.
    CompanyLocation,
}

impl Query {
    /// Parses `q` (surrounding spaces ignored): a `gid://shopify/…` GID, `#…` or `name:…` (an
    /// order name), anything with an `@` (an email), otherwise a SKU.
    pub fn parse(q: &str) -> Result<Query, TraceError> {
        let q = q.trim();
        if q.is_empty() {
            return Err(TraceError::EmptyQuery);
        }
        if q.starts_with("gid://") {
            let gid = Gid::parse(q).map_err(|e| TraceError::BadQuery(e.to_string()))?;
            let kind = match gid.kind() {
                "Order" => GidKind::Order,
                "Customer" => GidKind::Customer,
                "Product" => GidKind::Product,
                "ProductVariant" => GidKind::ProductVariant,
                "Company" => GidKind::Company,
                "CompanyLocation" => GidKind::CompanyLocation,
                other => return Err(TraceError::UnsupportedKind(other.to_owned())),
            };
            let id = numeric_id(gid.rest())
                .ok_or_else(|| TraceError::BadQuery(format!("{q:?} has no numeric id")))?;
            return Ok(Query::Gid {
                kind,
                gid: q.to_owned(),
                id,
            });
        }
        if let Some(name) = q.strip_prefix("name:") {
            let name = name.trim();
            return Ok(Query::OrderName {
                name: match name.starts_with('#') {
                    true => name.to_owned(),
                    false => format!("#{name}"),
                },
            });
        }
        if q.starts_with('#') {
            return Ok(Query::OrderName { name: q.to_owned() });
        }
        if q.contains('@') {
            return Ok(Query::Email {
                email: q.to_lowercase(),
            });
        }
        Ok(Query::Sku { sku: q.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_is_recognised() {
        assert_eq!(
            Query::parse(" gid://shopify/Order/1042 ").unwrap(),
            Query::Gid {
                kind: GidKind::Order,
                gid: "gid://shopify/Order/1042".into(),
                id: 1042
            }
        );
        assert_eq!(
            Query::parse("#1042").unwrap(),
            Query::OrderName {
                name: "#1042".into()
            }
        );
        assert_eq!(
            Query::parse("name:1042").unwrap(),
            Query::OrderName {
                name: "#1042".into()
            }
        );
        assert_eq!(
            Query::parse("Buyer@Example.com").unwrap(),
            Query::Email {
                email: "buyer@example.com".into()
            }
        );
        assert_eq!(
            Query::parse("SKU-1").unwrap(),
            Query::Sku {
                sku: "SKU-1".into()
            }
        );
    }

    #[test]
    fn unknown_gids_and_empty_queries_are_refused_with_a_reason() {
        assert!(matches!(Query::parse("  "), Err(TraceError::EmptyQuery)));
        assert_eq!(
            Query::parse("gid://shopify/Collection/1")
                .unwrap_err()
                .to_string(),
            "cannot trace a Collection: trace an Order, Customer, Product, ProductVariant, \
             Company or CompanyLocation GID, an order name (#1042), an email or a SKU"
        );
        assert!(matches!(
            Query::parse("gid://shopify/Order/abc"),
            Err(TraceError::BadQuery(_))
        ));
    }
}
