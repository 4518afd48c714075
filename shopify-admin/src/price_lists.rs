//! B2B price lists: a company location catalog (`catalogCreate`) with its price list
//! (`priceListCreate`), the list's fixed prices, quantity price breaks and quantity rules read
//! back (`priceList`, paged), and changed with `quantityPricingByVariantUpdate` (atomic: when
//! Shopify refuses one input, nothing of the call is written, and the caller gets
//! [`AdminError::UserErrors`]).
//!
//! Every call is paced by the shop's cost bucket like any other. A call may carry at most
//! [`MAX_INPUTS`] elements in each of its input lists; callers split larger changes.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    check_user_errors, AdminClient, AdminError, Money, QueryCost, Request, Retry, UserError,
};

/// Most elements of one input list of a `quantityPricingByVariantUpdate` call.
pub const MAX_INPUTS: usize = 250;
/// Quantity price breaks read per fixed price (a variant with more is read as incomplete).
pub const MAX_BREAKS_READ: u32 = 10;
/// Fixed prices read per page: 2 + 36 × (3 + 2 + 2 × 10) = 902 points requested, under the
/// 1,000 a query may request.
const PRICES_PAGE: u32 = 36;
/// Quantity rules read per page (2 + 250 × 2 points).
const RULES_PAGE: u32 = 250;

const VARIANT_GID: &str = "gid://shopify/ProductVariant/";

/// The GID of variant `id`.
pub fn variant_gid(id: u64) -> String {
    format!("{VARIANT_GID}{id}")
}

fn variant_number(gid: &str) -> Result<u64, AdminError> {
    gid.strip_prefix(VARIANT_GID)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| AdminError::Decode(format!("not a variant id: {gid}")))
}

/// A quantity price break: from `minimum_quantity` units, `price` each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceBreak {
    /// Fewest units of the variant for this price.
    pub minimum_quantity: u32,
    /// Unit price.
    pub price: Money,
}

/// A variant's fixed price on a price list, with its breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedPrice {
    /// The variant's numeric id.
    pub variant_id: u64,
    /// Unit price.
    pub price: Money,
    /// Its quantity price breaks, by minimum quantity.
    pub breaks: Vec<PriceBreak>,
    /// Whether the variant has more breaks than [`MAX_BREAKS_READ`] (not all were read).
    pub more_breaks: bool,
}

/// A variant's quantity rule on a price list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantityRule {
    /// The variant's numeric id.
    pub variant_id: u64,
    /// Fewest units per line (≥ 1, a multiple of `increment`).
    pub minimum: u32,
    /// Most units per line (a multiple of `increment`).
    pub maximum: Option<u32>,
    /// Units come in multiples of this (≥ 1).
    pub increment: u32,
}

/// A price list's fixed prices and quantity rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceListState {
    /// Its currency.
    pub currency: String,
    /// Fixed prices, by variant id.
    pub prices: Vec<FixedPrice>,
    /// Quantity rules, by variant id.
    pub rules: Vec<QuantityRule>,
}

/// One `quantityPricingByVariantUpdate` call's input (deletes run before adds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuantityPricingUpdate {
    /// Fixed prices to set: (variant, price).
    pub prices_to_add: Vec<(u64, Money)>,
    /// Variants whose fixed price (and its breaks) to delete.
    pub prices_to_delete: Vec<u64>,
    /// Breaks to add: (variant, break).
    pub breaks_to_add: Vec<(u64, PriceBreak)>,
    /// Variants whose breaks to delete.
    pub breaks_to_delete_by_variant: Vec<u64>,
    /// Quantity rules to set.
    pub rules_to_add: Vec<QuantityRule>,
    /// Variants whose quantity rule to delete.
    pub rules_to_delete: Vec<u64>,
}

impl QuantityPricingUpdate {
    /// Whether the call would change nothing.
    pub fn is_empty(&self) -> bool {
        self.prices_to_add.is_empty()
            && self.prices_to_delete.is_empty()
            && self.breaks_to_add.is_empty()
            && self.breaks_to_delete_by_variant.is_empty()
            && self.rules_to_add.is_empty()
            && self.rules_to_delete.is_empty()
    }

    /// The longest of its input lists (at most [`MAX_INPUTS`] per call).
    pub fn longest_list(&self) -> usize {
        [
            self.prices_to_add.len(),
            self.prices_to_delete.len(),
            self.breaks_to_add.len(),
            self.breaks_to_delete_by_variant.len(),
            self.rules_to_add.len(),
            self.rules_to_delete.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    fn to_json(&self) -> Value {
        let gids = |v: &[u64]| v.iter().map(|id| variant_gid(*id)).collect::<Vec<_>>();
        json!({
            "pricesToAdd": self.prices_to_add.iter()
                .map(|(v, p)| json!({"variantId": variant_gid(*v), "price": p}))
                .collect::<Vec<_>>(),
            "pricesToDeleteByVariantId": gids(&self.prices_to_delete),
            "quantityPriceBreaksToAdd": self.breaks_to_add.iter()
                .map(|(v, b)| json!({"variantId": variant_gid(*v),
                    "minimumQuantity": b.minimum_quantity, "price": b.price}))
                .collect::<Vec<_>>(),
            "quantityPriceBreaksToDelete": [],
            "quantityPriceBreaksToDeleteByVariantId": gids(&self.breaks_to_delete_by_variant),
            "quantityRulesToAdd": self.rules_to_add.iter()
                .map(|r| json!({"variantId": variant_gid(r.variant_id), "minimum": r.minimum,
                    "maximum": r.maximum, "increment": r.increment}))
                .collect::<Vec<_>>(),
            "quantityRulesToDeleteByVariantId": gids(&self.rules_to_delete),
        })
    }
}

const CATALOG_CREATE: &str = "mutation CatalogCreate($input: CatalogCreateInput!) {
  catalogCreate(input: $input) {
    catalog { id }
    userErrors { field message code }
  }
}";

const PRICE_LIST_CREATE: &str = "mutation PriceListCreate($input: PriceListCreateInput!) {
  priceListCreate(input: $input) {
    priceList { id currency }
    userErrors { field message code }
  }
}";

const UPDATE: &str = "mutation QuantityPricingByVariantUpdate($priceListId: ID!, $input: QuantityPricingByVariantUpdateInput!) {
  quantityPricingByVariantUpdate(priceListId: $priceListId, input: $input) {
    productVariants { id }
    userErrors { field message code }
  }
}";

const PRICES: &str = "query PriceListPrices($id: ID!, $first: Int!, $after: String) {
  priceList(id: $id) {
    currency
    prices(first: $first, after: $after, originType: FIXED) {
      nodes {
        variant { id }
        price { amount currencyCode }
        quantityPriceBreaks(first: 10) {
          nodes { minimumQuantity price { amount currencyCode } }
          pageInfo { hasNextPage }
        }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}";

const RULES: &str = "query PriceListQuantityRules($id: ID!, $first: Int!, $after: String) {
  priceList(id: $id) {
    currency
    quantityRules(first: $first, after: $after, originType: FIXED) {
      nodes { minimum maximum increment productVariant { id } }
      pageInfo { hasNextPage endCursor }
    }
  }
}";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    #[serde(default)]
    end_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Node {
    id: String,
}

/// The points a request cost (its requested cost when Shopify did not say).
fn points(cost: Option<&QueryCost>) -> u32 {
    cost.map_or(0, |c| c.actual_query_cost.unwrap_or(c.requested_query_cost))
}

impl AdminClient {
    /// Creates an active catalog titled `title` for the company location `location` (GID);
    /// its id and the cost points. Not retried when the outcome is unknown
    /// ([`AdminError::OutcomeUnknown`]): a second call would make a second catalog.
    pub async fn create_company_location_catalog(
        &self,
        title: &str,
        location: &str,
    ) -> Result<(String, u32), AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            catalog_create: Payload,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            catalog: Option<Node>,
            user_errors: Vec<UserError>,
        }
        let response = self
            .execute::<Data>(&Request {
                name: "CatalogCreate",
                query: CATALOG_CREATE,
                variables: json!({"input": {"title": title, "status": "ACTIVE",
                    "context": {"companyLocationIds": [location]}}}),
                estimated_cost: 10,
                retry: Retry::IfNotExecuted,
            })
            .await?;
        let cost = points(response.cost.as_ref());
        let p = response.data.catalog_create;
        check_user_errors(p.user_errors)?;
        let catalog = p
            .catalog
            .ok_or_else(|| AdminError::Decode("catalogCreate returned nothing".into()))?;
        Ok((catalog.id, cost))
    }

    /// Creates the price list `name` (unique in the shop) in `currency` for `catalog`, its
    /// parent adjustment 0 % (variants without a fixed price keep their list price); its id
    /// and the cost points. Not retried when the outcome is unknown.
    pub async fn create_price_list(
        &self,
        name: &str,
        currency: &str,
        catalog: &str,
    ) -> Result<(String, u32), AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            price_list_create: Payload,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            price_list: Option<Node>,
            user_errors: Vec<UserError>,
        }
        let response = self
            .execute::<Data>(&Request {
                name: "PriceListCreate",
                query: PRICE_LIST_CREATE,
                variables: json!({"input": {"name": name, "currency": currency, "catalogId": catalog,
                    "parent": {"adjustment": {"type": "PERCENTAGE_DECREASE", "value": 0}}}}),
                estimated_cost: 10,
                retry: Retry::IfNotExecuted,
            })
            .await?;
        let cost = points(response.cost.as_ref());
        let p = response.data.price_list_create;
        check_user_errors(p.user_errors)?;
        let list = p
            .price_list
            .ok_or_else(|| AdminError::Decode("priceListCreate returned nothing".into()))?;
        Ok((list.id, cost))
    }

    /// The fixed prices (with their breaks) and quantity rules of price list `id`, read page
    /// by page; `None` when the price list does not exist. Also the cost points.
    pub async fn price_list_state(
        &self,
        id: &str,
    ) -> Result<(Option<PriceListState>, u32), AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            price_list: Option<List>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct List {
            currency: String,
            #[serde(default)]
            prices: Option<Connection<PriceNode>>,
            #[serde(default)]
            quantity_rules: Option<Connection<RuleNode>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Connection<T> {
            nodes: Vec<T>,
            page_info: PageInfo,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct PriceNode {
            variant: Node,
            price: Money,
            quantity_price_breaks: Connection<BreakNode>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct BreakNode {
            minimum_quantity: u32,
            price: Money,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct RuleNode {
            minimum: u32,
            maximum: Option<u32>,
            increment: u32,
            product_variant: Node,
        }
        let mut state = PriceListState::default();
        let mut cost = 0;
        for (query, name, first, estimate) in [
            (
                PRICES,
                "PriceListPrices",
                PRICES_PAGE,
                3 + 2 + PRICES_PAGE * (5 + 2 * MAX_BREAKS_READ),
            ),
            (
                RULES,
                "PriceListQuantityRules",
                RULES_PAGE,
                3 + 2 * RULES_PAGE,
            ),
        ] {
            let mut after: Option<String> = None;
            loop {
                let response = self
                    .execute::<Data>(&Request {
                        name,
                        query,
                        variables: json!({"id": id, "first": first, "after": after}),
                        estimated_cost: estimate,
                        retry: Retry::Always,
                    })
                    .await?;
                cost += points(response.cost.as_ref());
                let Some(list) = response.data.price_list else {
                    return Ok((None, cost));
                };
                state.currency = list.currency;
                let page_info = if let Some(prices) = list.prices {
                    for n in prices.nodes {
                        state.prices.push(FixedPrice {
                            variant_id: variant_number(&n.variant.id)?,
                            price: n.price,
                            more_breaks: n.quantity_price_breaks.page_info.has_next_page,
                            breaks: n
                                .quantity_price_breaks
                                .nodes
                                .into_iter()
                                .map(|b| PriceBreak {
                                    minimum_quantity: b.minimum_quantity,
                                    price: b.price,
                                })
                                .collect(),
                        });
                    }
                    prices.page_info
                } else if let Some(rules) = list.quantity_rules {
                    for n in rules.nodes {
                        state.rules.push(QuantityRule {
                            variant_id: variant_number(&n.product_variant.id)?,
                            minimum: n.minimum,
                            maximum: n.maximum,
                            increment: n.increment,
                        });
                    }
                    rules.page_info
                } else {
                    return Err(AdminError::Decode(
                        "priceList without its connection".into(),
                    ));
                };
                match (page_info.has_next_page, page_info.end_cursor) {
                    (true, Some(cursor)) => after = Some(cursor),
                    _ => break,
                }
            }
        }
        Ok((Some(state), cost))
    }

    /// Applies `update` to price list `id` in one atomic call; the cost points. Refused input
    /// is [`AdminError::UserErrors`] (nothing written). Each input list must hold at most
    /// [`MAX_INPUTS`] elements. Retried on anything transient: the same call twice ends in the
    /// same state (a repeated delete of something already deleted is refused as a whole,
    /// which the caller's next comparison repairs).
    pub async fn update_quantity_pricing(
        &self,
        id: &str,
        update: &QuantityPricingUpdate,
    ) -> Result<u32, AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            quantity_pricing_by_variant_update: Payload,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            user_errors: Vec<UserError>,
        }
        let response = self
            .execute::<Data>(&Request {
                name: "QuantityPricingByVariantUpdate",
                query: UPDATE,
                variables: json!({"priceListId": id, "input": update.to_json()}),
                estimated_cost: 10,
                retry: Retry::Always,
            })
            .await?;
        let cost = points(response.cost.as_ref());
        check_user_errors(response.data.quantity_pricing_by_variant_update.user_errors)?;
        Ok(cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_names_every_input_list_with_variant_gids() {
        let update = QuantityPricingUpdate {
            prices_to_add: vec![(7, Money::from_cents(950, "USD"))],
            breaks_to_delete_by_variant: vec![7],
            breaks_to_add: vec![(
                7,
                PriceBreak {
                    minimum_quantity: 24,
                    price: Money::from_cents(750, "USD"),
                },
            )],
            rules_to_add: vec![QuantityRule {
                variant_id: 7,
                minimum: 6,
                maximum: None,
                increment: 6,
            }],
            ..Default::default()
        };
        let v = update.to_json();
        assert_eq!(
            v["pricesToAdd"],
            json!([{"variantId": "gid://shopify/ProductVariant/7",
                    "price": {"amount": "9.50", "currencyCode": "USD"}}])
        );
        assert_eq!(v["quantityPriceBreaksToAdd"][0]["minimumQuantity"], 24);
        assert_eq!(v["quantityRulesToAdd"][0]["maximum"], Value::Null);
        assert_eq!(v["pricesToDeleteByVariantId"], json!([]));
        assert_eq!(update.longest_list(), 1);
        assert!(!update.is_empty());
    }
}
