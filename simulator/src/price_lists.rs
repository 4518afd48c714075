//! B2B catalogs, price lists, fixed prices, quantity price breaks and quantity rules, and how
//! they price a B2B checkout.
//!
//! - `catalogCreate(input: {title, status, context: {companyLocationIds}})`: a company location
//!   catalog (the simulator has no companies: any `CompanyLocation` GID is accepted).
//! - `priceListCreate(input: {name, currency, parent: {adjustment}, catalogId})`: a price list,
//!   its name unique in the shop (`TAKEN`), attached to a catalog that has none yet.
//! - `quantityPricingByVariantUpdate(priceListId, input)`: fixed prices, quantity price breaks
//!   and quantity rules of many variants in one atomic call (nothing is written when any input
//!   is refused); deletes run before adds; each input list holds at most [`MAX_INPUTS`]
//!   elements (more is a top-level `MAX_INPUT_SIZE_EXCEEDED` error, nothing runs). Checked as
//!   Shopify documents: a variant must exist in the shop's catalog, currencies must be the
//!   price list's, no duplicate inputs, a break needs the variant's fixed price, a rule has
//!   `increment ≥ 1`, `minimum ≥ increment`, minimum and maximum multiples of the increment,
//!   `minimum ≤ maximum`, and every break minimum of the variant lies in the rule's range and
//!   is a multiple of its increment. Deleting a fixed price deletes its breaks.
//! - `priceList(id) { prices(first, after, originType: FIXED) { … quantityPriceBreaks(first) … }
//!   quantityRules(first, after) { … } }`: the fixed prices (the simulator lists no relative
//!   prices) and rules, paged by variant id.
//!
//! Costs follow Shopify's calculation: a mutation 10; a query 1 per object, a connection 2 plus
//! `first` times its nodes' cost (requested), refunded down to what was returned (actual).
//!
//! [`PriceListStore::checkout_price`] is how checkout prices a line of a buyer at a company
//! location: of the price lists of the location's active catalogs, the lowest of each list's
//! price (its break with the largest minimum not above the quantity, else its fixed price),
//! else the variant's list price; the quantity must satisfy the variant's quantity rule.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::catalog::CatalogSpec;
use crate::draft_orders::{decimal, parse_cents};
use crate::graphql::{self, Operation};

/// Most elements of one input list of `quantityPricingByVariantUpdate`.
pub const MAX_INPUTS: usize = 250;
/// Largest `first` of the `prices` and `quantityRules` connections.
pub const MAX_PAGE: u64 = 250;

const VARIANT_GID: &str = "gid://shopify/ProductVariant/";
const LOCATION_GID: &str = "gid://shopify/CompanyLocation/";
const CATALOG_GID: &str = "gid://shopify/CompanyLocationCatalog/";
const PRICE_LIST_GID: &str = "gid://shopify/PriceList/";

/// A quantity rule of a variant on a price list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantityRule {
    /// Fewest units per line.
    pub minimum: u32,
    /// Most units per line.
    pub maximum: Option<u32>,
    /// Units come in multiples of this.
    pub increment: u32,
}

/// A variant's fixed price on a price list, with its quantity price breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedPrice {
    /// Unit price in cents.
    pub cents: u64,
    /// Break minimum quantity → (break id, unit price in cents).
    pub breaks: BTreeMap<u32, (u64, u64)>,
}

/// A price list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceList {
    /// Numeric id.
    pub id: u64,
    /// Unique name.
    pub name: String,
    /// ISO currency.
    pub currency: String,
    /// The catalog it prices.
    pub catalog: Option<u64>,
    /// Fixed prices by variant id.
    pub prices: BTreeMap<u64, FixedPrice>,
    /// Quantity rules by variant id.
    pub rules: BTreeMap<u64, QuantityRule>,
}

#[derive(Clone, Debug)]
struct Catalog {
    id: u64,
    title: String,
    status: String,
    locations: Vec<String>,
    price_list: Option<u64>,
}

/// Why checkout refuses a line's quantity (the variant's quantity rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    /// The variant does not exist.
    #[error("no such variant")]
    UnknownVariant,
    /// Below the rule's minimum.
    #[error("the minimum is {0}")]
    BelowMinimum(u32),
    /// Above the rule's maximum.
    #[error("the maximum is {0}")]
    AboveMaximum(u32),
    /// Not a multiple of the rule's increment.
    #[error("the quantity must be a multiple of {0}")]
    NotIncrement(u32),
}

/// A shop's catalogs and price lists.
#[derive(Debug, Default)]
pub struct PriceListStore {
    catalogs: BTreeMap<u64, Catalog>,
    lists: BTreeMap<u64, PriceList>,
}

fn number(gid: &str, prefix: &str) -> Option<u64> {
    gid.strip_prefix(prefix)?.parse().ok()
}

fn user_error(field: &[&str], message: impl Into<String>, code: &str) -> Value {
    json!({"field": field, "message": message.into(), "code": code})
}

fn money(cents: u64, currency: &str) -> Value {
    json!({"amount": decimal(cents), "currencyCode": currency})
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The static cost of a `priceList` query and its `MAX_INPUT_SIZE_EXCEEDED` check of a
/// `quantityPricingByVariantUpdate`, as GraphQL validation runs before execution.
pub(crate) fn requested_cost(op: &Operation, vars: &Value) -> Result<u32, Value> {
    match op.root {
        "priceList" => {
            let (prices, rules) = pages(op, vars)?;
            let per_price = 3 + breaks_cost(op, vars);
            let mut cost = 1u64;
            if let Some((first, _)) = prices {
                cost += 2 + first * per_price;
            }
            if let Some((first, _)) = rules {
                cost += 2 + first * 2;
            }
            Ok(cost.min(u64::from(u32::MAX)) as u32)
        }
        "quantityPricingByVariantUpdate" => {
            let input = op.args.get("input").cloned().unwrap_or(Value::Null);
            for (_, list) in input.as_object().into_iter().flatten() {
                let n = list.as_array().map_or(0, Vec::len);
                if n > MAX_INPUTS {
                    return Err(graphql::error(
                        format!("The input array size of {n} is greater than the maximum allowed of {MAX_INPUTS}."),
                        "MAX_INPUT_SIZE_EXCEEDED",
                    ));
                }
            }
            Ok(10)
        }
        _ => Ok(10),
    }
}

/// A `quantityPriceBreaks(first:)` connection's cost per price (0 when not selected).
fn breaks_cost(op: &Operation, vars: &Value) -> u64 {
    op.nested_args("quantityPriceBreaks", vars).map_or(0, |a| {
        2 + a.get("first").and_then(Value::as_u64).unwrap_or(0) * 2
    })
}

type Page = Option<(u64, u64)>;

/// `(first, after)` of the `prices` and `quantityRules` connections, when selected.
fn pages(op: &Operation, vars: &Value) -> Result<(Page, Page), Value> {
    let page = |field: &str| -> Result<Page, Value> {
        let Some(a) = op.nested_args(field, vars) else {
            return Ok(None);
        };
        let first = a.get("first").and_then(Value::as_u64).ok_or_else(|| {
            graphql::error(
                "you must provide one of first or last",
                "argumentLiteralsIncompatible",
            )
        })?;
        if first > MAX_PAGE {
            return Err(graphql::error(
                format!(
                    "The maximum page size is {MAX_PAGE}: first: {first} requests more records"
                ),
                "MAX_PAGE_SIZE_EXCEEDED",
            ));
        }
        let after = match a.get("after") {
            None | Some(Value::Null) => 0,
            Some(c) => c
                .as_str()
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| graphql::error(format!("Invalid cursor: {c}"), "BAD_REQUEST"))?,
        };
        Ok(Some((first, after)))
    };
    Ok((page("prices")?, page("quantityRules")?))
}

impl PriceListStore {
    /// Runs one of the recognised root fields; `data` and the actual cost.
    pub(crate) fn execute(
        &mut self,
        op: &Operation,
        vars: &Value,
        catalog: &CatalogSpec,
        next_id: &mut dyn FnMut() -> u64,
    ) -> (Value, u32) {
        let input = op.args.get("input").cloned().unwrap_or(Value::Null);
        match op.root {
            "catalogCreate" => (
                json!({"catalogCreate": self.catalog_create(&input, next_id)}),
                10,
            ),
            "priceListCreate" => (
                json!({"priceListCreate": self.price_list_create(&input, next_id)}),
                10,
            ),
            "quantityPricingByVariantUpdate" => {
                let id = op
                    .args
                    .get("priceListId")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                (
                    json!({"quantityPricingByVariantUpdate":
                        self.quantity_pricing_update(id, &input, catalog, next_id)}),
                    10,
                )
            }
            _ => {
                let id = op.args.get("id").and_then(Value::as_str).unwrap_or("");
                let (list, cost) = self.price_list_json(op, vars, id);
                (json!({"priceList": list}), cost)
            }
        }
    }

    fn catalog_create(&mut self, input: &Value, next_id: &mut dyn FnMut() -> u64) -> Value {
        let refuse = |e: Value| json!({"catalog": null, "userErrors": [e]});
        let title = input
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim();
        if title.is_empty() {
            return refuse(user_error(
                &["input", "title"],
                "Title can't be blank",
                "BLANK",
            ));
        }
        let status = input.get("status").and_then(Value::as_str).unwrap_or("");
        if !["ACTIVE", "DRAFT", "ARCHIVED"].contains(&status) {
            return refuse(user_error(
                &["input", "status"],
                "Status is invalid",
                "INVALID",
            ));
        }
        let locations = strings(input.pointer("/context/companyLocationIds"));
        if locations.is_empty() {
            return refuse(user_error(
                &["input", "context"],
                "A catalog needs a context",
                "CONTEXT_CATALOG_LIMIT",
            ));
        }
        if locations.iter().any(|l| number(l, LOCATION_GID).is_none()) {
            return refuse(user_error(
                &["input", "context", "companyLocationIds"],
                "Company location does not exist",
                "COMPANY_LOCATION_NOT_FOUND",
            ));
        }
        let id = next_id();
        let c = Catalog {
            id,
            title: title.to_owned(),
            status: status.to_owned(),
            locations,
            price_list: None,
        };
        let answer = self.catalog_json(&c);
        self.catalogs.insert(id, c);
        json!({"catalog": answer, "userErrors": []})
    }

    fn catalog_json(&self, c: &Catalog) -> Value {
        json!({"id": format!("{CATALOG_GID}{}", c.id), "title": c.title, "status": c.status,
               "priceList": c.price_list.map(|p| json!({"id": format!("{PRICE_LIST_GID}{p}")}))})
    }

    fn price_list_create(&mut self, input: &Value, next_id: &mut dyn FnMut() -> u64) -> Value {
        let refuse = |e: Value| json!({"priceList": null, "userErrors": [e]});
        let name = input
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim();
        if name.is_empty() {
            return refuse(user_error(
                &["input", "name"],
                "Name can't be blank",
                "BLANK",
            ));
        }
        if self.lists.values().any(|l| l.name == name) {
            return refuse(user_error(
                &["input", "name"],
                "Name has already been taken",
                "TAKEN",
            ));
        }
        let currency = input.get("currency").and_then(Value::as_str).unwrap_or("");
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return refuse(user_error(
                &["input", "currency"],
                "Currency is not supported",
                "CURRENCY_NOT_SUPPORTED",
            ));
        }
        if input
            .pointer("/parent/adjustment/type")
            .and_then(Value::as_str)
            .is_none()
        {
            return refuse(user_error(
                &["input", "parent"],
                "Parent can't be blank",
                "BLANK",
            ));
        }
        let catalog = match input.get("catalogId").and_then(Value::as_str) {
            None => None,
            Some(gid) => match number(gid, CATALOG_GID).filter(|c| self.catalogs.contains_key(c)) {
                None => {
                    return refuse(user_error(
                        &["input", "catalogId"],
                        "Catalog does not exist",
                        "CATALOG_DOES_NOT_EXIST",
                    ))
                }
                Some(c) if self.catalogs[&c].price_list.is_some() => {
                    return refuse(user_error(
                        &["input", "catalogId"],
                        "Catalog already has a price list",
                        "CATALOG_TAKEN",
                    ))
                }
                Some(c) => Some(c),
            },
        };
        let id = next_id();
        if let Some(c) = catalog {
            self.catalogs.get_mut(&c).expect("checked above").price_list = Some(id);
        }
        let list = PriceList {
            id,
            name: name.to_owned(),
            currency: currency.to_owned(),
            catalog,
            prices: BTreeMap::new(),
            rules: BTreeMap::new(),
        };
        let answer = json!({"id": format!("{PRICE_LIST_GID}{id}"), "name": list.name,
            "currency": list.currency,
            "catalog": catalog.map(|c| json!({"id": format!("{CATALOG_GID}{c}")}))});
        self.lists.insert(id, list);
        json!({"priceList": answer, "userErrors": []})
    }

    /// Applies `input` to a copy of the list and keeps it only when nothing was refused.
    fn quantity_pricing_update(
        &mut self,
        list_gid: &str,
        input: &Value,
        catalog: &CatalogSpec,
        next_id: &mut dyn FnMut() -> u64,
    ) -> Value {
        let refuse = |errors: Vec<Value>| json!({"productVariants": null, "userErrors": errors});
        let Some(list) = number(list_gid, PRICE_LIST_GID).and_then(|id| self.lists.get(&id)) else {
            return refuse(vec![user_error(
                &["priceListId"],
                "Price List does not exist.",
                "PRICE_LIST_NOT_FOUND",
            )]);
        };
        let mut next = list.clone();
        let mut errors = Vec::new();
        let mut touched: Vec<u64> = Vec::new();
        let list_of = |key: &str| {
            input
                .get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let variant = |v: &Value| {
            v.as_str()
                .and_then(|g| number(g, VARIANT_GID))
                .filter(|id| catalog.variant_by_id(*id).is_some())
        };

        // Deletes first.
        for (i, v) in list_of("pricesToDeleteByVariantId").iter().enumerate() {
            let i = i.to_string();
            let f = ["input", "pricesToDeleteByVariantId", i.as_str()];
            match variant(v) {
                Some(id) if next.prices.remove(&id).is_some() => touched.push(id),
                Some(_) => errors.push(user_error(
                    &f,
                    "Price is not fixed.",
                    "PRICE_DELETE_PRICE_NOT_FIXED",
                )),
                None => errors.push(user_error(
                    &f,
                    "Fixed price's variant not found.",
                    "PRICE_DELETE_VARIANT_NOT_FOUND",
                )),
            }
        }
        for (i, v) in list_of("quantityPriceBreaksToDeleteByVariantId")
            .iter()
            .enumerate()
        {
            let i = i.to_string();
            let f = [
                "input",
                "quantityPriceBreaksToDeleteByVariantId",
                i.as_str(),
            ];
            match variant(v) {
                Some(id) => {
                    if let Some(p) = next.prices.get_mut(&id) {
                        p.breaks.clear();
                    }
                    touched.push(id);
                }
                None => errors.push(user_error(
                    &f,
                    "Variant to delete by is not found.",
                    "QUANTITY_PRICE_BREAK_DELETE_BY_VARIANT_ID_VARIANT_NOT_FOUND",
                )),
            }
        }
        for (i, b) in list_of("quantityPriceBreaksToDelete").iter().enumerate() {
            let i = i.to_string();
            let f = ["input", "quantityPriceBreaksToDelete", i.as_str()];
            let id = b
                .as_str()
                .and_then(|g| number(g, "gid://shopify/QuantityPriceBreak/"));
            let found = id.and_then(|id| {
                next.prices.iter_mut().find_map(|(v, p)| {
                    let min = p
                        .breaks
                        .iter()
                        .find(|(_, (bid, _))| *bid == id)
                        .map(|(m, _)| *m)?;
                    p.breaks.remove(&min);
                    Some(*v)
                })
            });
            match found {
                Some(v) => touched.push(v),
                None => errors.push(user_error(
                    &f,
                    "Quantity price break not found.",
                    "QUANTITY_PRICE_BREAK_DELETE_NOT_FOUND",
                )),
            }
        }
        for (i, v) in list_of("quantityRulesToDeleteByVariantId")
            .iter()
            .enumerate()
        {
            let i = i.to_string();
            let f = ["input", "quantityRulesToDeleteByVariantId", i.as_str()];
            match variant(v) {
                Some(id) if next.rules.remove(&id).is_some() => touched.push(id),
                Some(_) => errors.push(user_error(
                    &f,
                    "Quantity rule not found.",
                    "QUANTITY_RULE_DELETE_RULE_NOT_FOUND",
                )),
                None => errors.push(user_error(
                    &f,
                    "Quantity rule variant not found.",
                    "QUANTITY_RULE_DELETE_VARIANT_NOT_FOUND",
                )),
            }
        }

        // Then adds.
        let mut seen = Vec::new();
        for (i, p) in list_of("pricesToAdd").iter().enumerate() {
            let i = i.to_string();
            let f = ["input", "pricesToAdd", i.as_str()];
            let Some(id) = p.get("variantId").and_then(variant) else {
                errors.push(user_error(
                    &f,
                    "Fixed price's variant not found.",
                    "PRICE_ADD_VARIANT_NOT_FOUND",
                ));
                continue;
            };
            if seen.contains(&id) {
                errors.push(user_error(
                    &f,
                    "Prices to add inputs must be unique by variant id.",
                    "PRICE_ADD_DUPLICATE_INPUT_FOR_VARIANT",
                ));
                continue;
            }
            seen.push(id);
            let price = p.get("price").cloned().unwrap_or(Value::Null);
            if price.get("currencyCode").and_then(Value::as_str) != Some(next.currency.as_str()) {
                errors.push(user_error(
                    &f,
                    "Price list and fixed price currency mismatch.",
                    "PRICE_ADD_CURRENCY_MISMATCH",
                ));
                continue;
            }
            let Some(cents) = price.get("amount").and_then(parse_cents) else {
                errors.push(user_error(&f, "The input value is blank.", "BLANK"));
                continue;
            };
            next.prices
                .entry(id)
                .and_modify(|x| x.cents = cents)
                .or_insert(FixedPrice {
                    cents,
                    breaks: BTreeMap::new(),
                });
            touched.push(id);
        }
        let mut seen = Vec::new();
        for (i, b) in list_of("quantityPriceBreaksToAdd").iter().enumerate() {
            let i = i.to_string();
            let f = ["input", "quantityPriceBreaksToAdd", i.as_str()];
            let Some(id) = b.get("variantId").and_then(variant) else {
                errors.push(user_error(
                    &f,
                    "Quantity price break variant not found.",
                    "QUANTITY_PRICE_BREAK_ADD_VARIANT_NOT_FOUND",
                ));
                continue;
            };
            let min = b
                .get("minimumQuantity")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if min < 1 || min > u64::from(u32::MAX) {
                errors.push(user_error(
                    &f,
                    "Invalid quantity price break.",
                    "QUANTITY_PRICE_BREAK_ADD_INVALID",
                ));
                continue;
            }
            let min = min as u32;
            if seen.contains(&(id, min)) {
                errors.push(user_error(&f, "Quantity price breaks to add inputs must be unique by variant id and minimum quantity.", "QUANTITY_PRICE_BREAK_ADD_DUPLICATE_INPUT_FOR_VARIANT_AND_MIN"));
                continue;
            }
            seen.push((id, min));
            let price = b.get("price").cloned().unwrap_or(Value::Null);
            if price.get("currencyCode").and_then(Value::as_str) != Some(next.currency.as_str()) {
                errors.push(user_error(
                    &f,
                    "Price list and quantity price break currency mismatch.",
                    "QUANTITY_PRICE_BREAK_ADD_CURRENCY_MISMATCH",
                ));
                continue;
            }
            let Some(cents) = price.get("amount").and_then(parse_cents) else {
                errors.push(user_error(
                    &f,
                    "Invalid quantity price break.",
                    "QUANTITY_PRICE_BREAK_ADD_INVALID",
                ));
                continue;
            };
            let Some(fixed) = next.prices.get_mut(&id) else {
                errors.push(user_error(
                    &f,
                    "Quantity price break's fixed price not found.",
                    "QUANTITY_PRICE_BREAK_ADD_PRICE_LIST_PRICE_NOT_FOUND",
                ));
                continue;
            };
            fixed.breaks.insert(min, (next_id(), cents));
            touched.push(id);
        }
        let mut seen = Vec::new();
        for (i, r) in list_of("quantityRulesToAdd").iter().enumerate() {
            let i = i.to_string();
            let f = ["input", "quantityRulesToAdd", i.as_str()];
            let Some(id) = r.get("variantId").and_then(variant) else {
                errors.push(user_error(
                    &f,
                    "Quantity rule variant not found.",
                    "QUANTITY_RULE_ADD_VARIANT_NOT_FOUND",
                ));
                continue;
            };
            if seen.contains(&id) {
                errors.push(user_error(
                    &f,
                    "Quantity rules to add inputs must be unique by variant id.",
                    "QUANTITY_RULE_ADD_DUPLICATE_INPUT_FOR_VARIANT",
                ));
                continue;
            }
            seen.push(id);
            let int = |k: &str| r.get(k).and_then(Value::as_i64);
            let (increment, minimum, maximum) = (
                int("increment").unwrap_or(0),
                int("minimum").unwrap_or(0),
                int("maximum"),
            );
            let problem = if increment < 1 {
                Some((
                    "Quantity rule increment is less than one.",
                    "QUANTITY_RULE_ADD_INCREMENT_IS_LESS_THAN_ONE",
                ))
            } else if minimum < 1 {
                Some((
                    "Quantity rule minimum is less than one.",
                    "QUANTITY_RULE_ADD_MINIMUM_IS_LESS_THAN_ONE",
                ))
            } else if maximum.is_some_and(|m| m < 1) {
                Some((
                    "Quantity rule maximum is less than one.",
                    "QUANTITY_RULE_ADD_MAXIMUM_IS_LESS_THAN_ONE",
                ))
            } else if increment > minimum {
                Some((
                    "Quantity rule increment is greater than minimum.",
                    "QUANTITY_RULE_ADD_INCREMENT_IS_GREATER_THAN_MINIMUM",
                ))
            } else if minimum % increment != 0 {
                Some((
                    "Quantity rule minimum is not a multiple of increment.",
                    "QUANTITY_RULE_ADD_MINIMUM_NOT_A_MULTIPLE_OF_INCREMENT",
                ))
            } else if maximum.is_some_and(|m| m % increment != 0) {
                Some((
                    "Quantity rule maximum is not a multiple of increment.",
                    "QUANTITY_RULE_ADD_MAXIMUM_NOT_A_MULTIPLE_OF_INCREMENT",
                ))
            } else if maximum.is_some_and(|m| minimum > m) {
                Some((
                    "Quantity rule minimum is greater than maximum.",
                    "QUANTITY_RULE_ADD_MINIMUM_GREATER_THAN_MAXIMUM",
                ))
            } else {
                None
            };
            if let Some((message, code)) = problem {
                errors.push(user_error(&f, message, code));
                continue;
            }
            let clamp = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
            next.rules.insert(
                id,
                QuantityRule {
                    minimum: clamp(minimum),
                    maximum: maximum.map(clamp),
                    increment: clamp(increment),
                },
            );
            touched.push(id);
        }

        // The breaks and rules of every touched variant must agree, as they end up.
        touched.sort_unstable();
        touched.dedup();
        for &id in &touched {
            let (Some(rule), Some(fixed)) = (next.rules.get(&id), next.prices.get(&id)) else {
                continue;
            };
            for &min in fixed.breaks.keys() {
                let problem = if min < rule.minimum {
                    Some((
                        "Quantity price break miniumum is less than the quantity rule minimum.",
                        "QUANTITY_PRICE_BREAK_ADD_MIN_LOWER_THAN_QUANTITY_RULES_MIN",
                    ))
                } else if rule.maximum.is_some_and(|m| min > m) {
                    Some((
                        "Quantity price break miniumum is higher than the quantity rule maximum.",
                        "QUANTITY_PRICE_BREAK_ADD_MIN_HIGHER_THAN_QUANTITY_RULES_MAX",
                    ))
                } else if !min.is_multiple_of(rule.increment) {
                    Some(("Quantity price break miniumum is not multiple of the quantity rule increment.", "QUANTITY_PRICE_BREAK_ADD_MIN_NOT_A_MULTIPLE_OF_QUANTITY_RULES_INCREMENT"))
                } else {
                    None
                };
                if let Some((message, code)) = problem {
                    errors.push(user_error(
                        &["input", "quantityPriceBreaksToAdd"],
                        format!("{message} (variant {VARIANT_GID}{id}, minimum {min})"),
                        code,
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return refuse(errors);
        }
        let variants: Vec<Value> = touched
            .iter()
            .map(|v| json!({"id": format!("{VARIANT_GID}{v}")}))
            .collect();
        self.lists.insert(next.id, next);
        json!({"productVariants": variants, "userErrors": []})
    }

    /// `priceList(id)` with the selected connections; the node and its actual cost.
    fn price_list_json(&self, op: &Operation, vars: &Value, gid: &str) -> (Value, u32) {
        let Some(list) = number(gid, PRICE_LIST_GID).and_then(|id| self.lists.get(&id)) else {
            return (Value::Null, 1);
        };
        let Ok((prices, rules)) = pages(op, vars) else {
            return (Value::Null, 1);
        };
        let breaks_first = op
            .nested_args("quantityPriceBreaks", vars)
            .and_then(|a| a.get("first").and_then(Value::as_u64));
        let mut cost = 1u64;
        let mut node = json!({"id": gid, "name": list.name, "currency": list.currency,
            "catalog": list.catalog.map(|c| json!({"id": format!("{CATALOG_GID}{c}")}))});
        if let Some((first, after)) = prices {
            let matching: Vec<(&u64, &FixedPrice)> =
                list.prices.range(after.saturating_add(1)..).collect();
            let page = &matching[..matching.len().min(first as usize)];
            cost += 2;
            let nodes: Vec<Value> = page
                .iter()
                .map(|(v, p)| {
                    cost += 3;
                    let mut n = json!({"variant": {"id": format!("{VARIANT_GID}{v}")},
                        "price": money(p.cents, &list.currency), "originType": "FIXED"});
                    if let Some(bf) = breaks_first {
                        let shown: Vec<Value> = p
                            .breaks
                            .iter()
                            .take(bf as usize)
                            .map(|(min, (id, cents))| {
                                json!({"id": format!("gid://shopify/QuantityPriceBreak/{id}"),
                                "minimumQuantity": min, "price": money(*cents, &list.currency)})
                            })
                            .collect();
                        cost += 2 + 2 * shown.len() as u64;
                        n["quantityPriceBreaks"] = json!({"nodes": shown,
                            "pageInfo": {"hasNextPage": p.breaks.len() > bf as usize}});
                    }
                    n
                })
                .collect();
            node["prices"] = json!({"nodes": nodes, "pageInfo": {
                "hasNextPage": matching.len() > page.len(),
                "endCursor": page.last().map(|(v, _)| v.to_string())}});
        }
        if let Some((first, after)) = rules {
            let matching: Vec<(&u64, &QuantityRule)> =
                list.rules.range(after.saturating_add(1)..).collect();
            let page = &matching[..matching.len().min(first as usize)];
            cost += 2 + 2 * page.len() as u64;
            let nodes: Vec<Value> = page
                .iter()
                .map(|(v, r)| {
                    json!({"minimum": r.minimum, "maximum": r.maximum, "increment": r.increment,
                    "isDefault": r.minimum == 1 && r.increment == 1 && r.maximum.is_none(),
                    "originType": "FIXED", "productVariant": {"id": format!("{VARIANT_GID}{v}")}})
                })
                .collect();
            node["quantityRules"] = json!({"nodes": nodes, "pageInfo": {
                "hasNextPage": matching.len() > page.len(),
                "endCursor": page.last().map(|(v, _)| v.to_string())}});
        }
        (node, cost.min(u64::from(u32::MAX)) as u32)
    }

    /// The price lists of `location`'s active catalogs.
    fn lists_of<'a>(&'a self, location: &'a str) -> impl Iterator<Item = &'a PriceList> + 'a {
        self.catalogs
            .values()
            .filter(move |c| c.status == "ACTIVE" && c.locations.iter().any(|l| l == location))
            .filter_map(|c| c.price_list.and_then(|p| self.lists.get(&p)))
    }

    /// The unit price in cents checkout charges a buyer at `location` for `quantity` units of
    /// `variant`, or why the quantity is refused (module docs).
    pub fn checkout_price(
        &self,
        location: &str,
        variant: u64,
        quantity: u32,
        catalog: &CatalogSpec,
    ) -> Result<u64, CheckoutError> {
        let list_price = catalog
            .variant_by_id(variant)
            .ok_or(CheckoutError::UnknownVariant)?
            .price_cents;
        if let Some(rule) = self.lists_of(location).find_map(|l| l.rules.get(&variant)) {
            if quantity < rule.minimum {
                return Err(CheckoutError::BelowMinimum(rule.minimum));
            }
            if let Some(max) = rule.maximum.filter(|m| quantity > *m) {
                return Err(CheckoutError::AboveMaximum(max));
            }
            if !quantity.is_multiple_of(rule.increment) {
                return Err(CheckoutError::NotIncrement(rule.increment));
            }
        }
        let negotiated = self
            .lists_of(location)
            .filter_map(|l| l.prices.get(&variant))
            .map(|p| {
                p.breaks
                    .range(..=quantity)
                    .next_back()
                    .map_or(p.cents, |(_, (_, cents))| *cents)
            })
            .min();
        Ok(negotiated.unwrap_or(list_price))
    }

    /// Sets the fixed price of `variant` on `location`'s price list, as a merchant would in
    /// the admin (its breaks are kept); whether the location has a price list.
    pub fn edit_price(&mut self, location: &str, variant: u64, cents: u64) -> bool {
        let Some(id) = self.lists_of(location).next().map(|l| l.id) else {
            return false;
        };
        let list = self.lists.get_mut(&id).expect("listed above");
        list.prices
            .entry(variant)
            .and_modify(|p| p.cents = cents)
            .or_insert(FixedPrice {
                cents,
                breaks: BTreeMap::new(),
            });
        true
    }

    /// The price list of `location`'s first active catalog.
    pub fn price_list_of(&self, location: &str) -> Option<PriceList> {
        self.lists_of(location).next().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::parse;

    const L: &str = "gid://shopify/CompanyLocation/9100001";

    fn run(store: &mut PriceListStore, spec: &CatalogSpec, q: &str, vars: Value) -> (Value, u32) {
        let op = parse(q, &vars).unwrap();
        let mut n = 100;
        store.execute(&op, &vars, spec, &mut || {
            n += 1;
            n
        })
    }

    fn setup() -> (PriceListStore, CatalogSpec, String) {
        let spec = CatalogSpec::new(1, 10);
        let mut s = PriceListStore::default();
        let (d, _) = run(&mut s, &spec,
            "mutation($i: CatalogCreateInput!) { catalogCreate(input: $i) { catalog { id } userErrors { code } } }",
            json!({"i": {"title": "Wholesail 9100001", "status": "ACTIVE", "context": {"companyLocationIds": [L]}}}));
        let catalog = d["catalogCreate"]["catalog"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (d, _) = run(&mut s, &spec,
            "mutation($i: PriceListCreateInput!) { priceListCreate(input: $i) { priceList { id } userErrors { code } } }",
            json!({"i": {"name": "Wholesail 9100001", "currency": "USD", "catalogId": catalog,
                         "parent": {"adjustment": {"type": "PERCENTAGE_DECREASE", "value": 0}}}}));
        let list = d["priceListCreate"]["priceList"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        (s, spec, list)
    }

    const UPDATE: &str = "mutation($id: ID!, $input: QuantityPricingByVariantUpdateInput!) { quantityPricingByVariantUpdate(priceListId: $id, input: $input) { productVariants { id } userErrors { field message code } } }";

    fn gid(v: u64) -> String {
        format!("{VARIANT_GID}{v}")
    }

    fn usd(amount: &str) -> Value {
        json!({"amount": amount, "currencyCode": "USD"})
    }

    #[test]
    fn checkout_charges_the_break_the_fixed_price_or_the_list_price_and_enforces_rules() {
        let (mut s, spec, list) = setup();
        let v = CatalogSpec::variant_id(0, 0);
        let other = CatalogSpec::variant_id(1, 0);
        let (d, cost) = run(
            &mut s,
            &spec,
            UPDATE,
            json!({"id": list, "input": {
            "pricesToAdd": [{"variantId": gid(v), "price": usd("9.00")}],
            "quantityPriceBreaksToAdd": [{"variantId": gid(v), "minimumQuantity": 12, "price": usd("8.00")},
                                         {"variantId": gid(v), "minimumQuantity": 24, "price": usd("7.50")}],
            "quantityRulesToAdd": [{"variantId": gid(v), "minimum": 6, "maximum": 120, "increment": 6}],
            "pricesToDeleteByVariantId": [], "quantityPriceBreaksToDelete": [], "quantityRulesToDeleteByVariantId": []}}),
        );
        assert_eq!(
            d["quantityPricingByVariantUpdate"]["userErrors"],
            json!([]),
            "{d}"
        );
        assert_eq!(cost, 10);
        let price = |q| s.checkout_price(L, v, q, &spec);
        assert_eq!(price(6), Ok(900));
        assert_eq!(price(12), Ok(800));
        assert_eq!(price(30), Ok(750));
        assert_eq!(price(7), Err(CheckoutError::NotIncrement(6)));
        assert_eq!(price(126), Err(CheckoutError::AboveMaximum(120)));
        assert_eq!(price(0), Err(CheckoutError::BelowMinimum(6)));
        let list_price = spec.variant_by_id(other).unwrap().price_cents;
        assert_eq!(s.checkout_price(L, other, 1, &spec), Ok(list_price));
        assert_eq!(
            s.checkout_price("gid://shopify/CompanyLocation/1", v, 7, &spec)
                .unwrap(),
            spec.variant_by_id(v).unwrap().price_cents,
            "another buyer: list price, no rule"
        );

        assert!(s.edit_price(L, v, 850));
        assert_eq!(s.checkout_price(L, v, 6, &spec), Ok(850));
    }

    #[test]
    fn refused_inputs_change_nothing_and_name_their_code() {
        let (mut s, spec, list) = setup();
        let v = CatalogSpec::variant_id(0, 0);
        let codes = |d: &Value| -> Vec<String> {
            d["quantityPricingByVariantUpdate"]["userErrors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["code"].as_str().unwrap().to_owned())
                .collect()
        };
        // A break without a fixed price, an unknown variant and a bad rule, with one good price.
        let (d, _) = run(
            &mut s,
            &spec,
            UPDATE,
            json!({"id": list, "input": {
            "pricesToAdd": [{"variantId": gid(CatalogSpec::variant_id(1, 0)), "price": usd("1.00")},
                            {"variantId": gid(1), "price": usd("1.00")}],
            "quantityPriceBreaksToAdd": [{"variantId": gid(v), "minimumQuantity": 10, "price": usd("8.00")}],
            "quantityRulesToAdd": [{"variantId": gid(v), "minimum": 7, "increment": 6}]}}),
        );
        assert_eq!(
            codes(&d),
            [
                "PRICE_ADD_VARIANT_NOT_FOUND",
                "QUANTITY_PRICE_BREAK_ADD_PRICE_LIST_PRICE_NOT_FOUND",
                "QUANTITY_RULE_ADD_MINIMUM_NOT_A_MULTIPLE_OF_INCREMENT"
            ]
        );
        assert!(
            s.price_list_of(L).unwrap().prices.is_empty(),
            "atomic: nothing written"
        );
        // A break off the rule's increment.
        let (d, _) = run(
            &mut s,
            &spec,
            UPDATE,
            json!({"id": list, "input": {
            "pricesToAdd": [{"variantId": gid(v), "price": usd("9.00")}],
            "quantityPriceBreaksToAdd": [{"variantId": gid(v), "minimumQuantity": 10, "price": usd("8.00")}],
            "quantityRulesToAdd": [{"variantId": gid(v), "minimum": 6, "increment": 6}]}}),
        );
        assert_eq!(
            codes(&d),
            ["QUANTITY_PRICE_BREAK_ADD_MIN_NOT_A_MULTIPLE_OF_QUANTITY_RULES_INCREMENT"]
        );
        // Another currency.
        let (d, _) = run(
            &mut s,
            &spec,
            UPDATE,
            json!({"id": list, "input": {
            "pricesToAdd": [{"variantId": gid(v), "price": {"amount": "9.00", "currencyCode": "EUR"}}]}}),
        );
        assert_eq!(codes(&d), ["PRICE_ADD_CURRENCY_MISMATCH"]);
        // Too many inputs: refused before execution.
        let many: Vec<Value> = (0..251)
            .map(|i| json!({"variantId": gid(i), "price": usd("1.00")}))
            .collect();
        let vars = json!({"id": list, "input": {"pricesToAdd": many}});
        let op = parse(UPDATE, &vars).unwrap();
        let e = requested_cost(&op, &vars).unwrap_err();
        assert_eq!(e["extensions"]["code"], "MAX_INPUT_SIZE_EXCEEDED");
    }

    #[test]
    fn price_list_pages_prices_and_rules_and_costs_what_it_returns() {
        let (mut s, spec, list) = setup();
        let vs: Vec<u64> = (0..3).map(|i| CatalogSpec::variant_id(i, 0)).collect();
        let prices: Vec<Value> = vs
            .iter()
            .map(|v| json!({"variantId": gid(*v), "price": usd("5.00")}))
            .collect();
        let rules: Vec<Value> = vs
            .iter()
            .map(|v| json!({"variantId": gid(*v), "minimum": 2, "increment": 2}))
            .collect();
        run(
            &mut s,
            &spec,
            UPDATE,
            json!({"id": list, "input": {"pricesToAdd": prices, "quantityRulesToAdd": rules,
            "quantityPriceBreaksToAdd": [{"variantId": gid(vs[0]), "minimumQuantity": 10, "price": usd("4.00")}]}}),
        );
        let q = "query($id: ID!, $after: String) { priceList(id: $id) { currency prices(first: 2, after: $after, originType: FIXED) { nodes { variant { id } price { amount currencyCode } quantityPriceBreaks(first: 5) { nodes { minimumQuantity price { amount } } } } pageInfo { hasNextPage endCursor } } } }";
        let vars = json!({"id": list});
        let op = parse(q, &vars).unwrap();
        assert_eq!(requested_cost(&op, &vars).unwrap(), 1 + 2 + 2 * (3 + 12));
        let (d, actual) = run(&mut s, &spec, q, vars);
        let p = &d["priceList"]["prices"];
        assert_eq!(p["nodes"].as_array().unwrap().len(), 2);
        assert_eq!(
            p["nodes"][0]["quantityPriceBreaks"]["nodes"][0]["minimumQuantity"],
            10
        );
        assert_eq!(actual, 1 + 2 + (3 + 2 + 2) + (3 + 2));
        let (d, _) = run(
            &mut s,
            &spec,
            q,
            json!({"id": list, "after": p["pageInfo"]["endCursor"]}),
        );
        assert_eq!(
            d["priceList"]["prices"]["nodes"].as_array().unwrap().len(),
            1
        );
        assert_eq!(d["priceList"]["prices"]["pageInfo"]["hasNextPage"], false);
        let q = "query($id: ID!) { priceList(id: $id) { quantityRules(first: 250) { nodes { minimum maximum increment productVariant { id } } } } }";
        let (d, actual) = run(&mut s, &spec, q, json!({"id": list}));
        assert_eq!(
            d["priceList"]["quantityRules"]["nodes"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(actual, 1 + 2 + 6);
    }
}
