//! The rules file: one rule per row, as CSV (with a header) or JSON (an array of objects with
//! the same field names), parsed and checked row by row into [`Rule`]s. Every bad row is
//! reported with its number; see the directory's `README.md` for the format.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use wholesail_rules::CurrencyCode;

use super::compute::LOCATION_GID_PREFIX;

/// The columns a rules file may have.
pub const COLUMNS: [&str; 13] = [
    "rule",
    "company_location",
    "target",
    "min_quantity",
    "unit_price",
    "increment",
    "max_quantity",
    "quantity",
    "period",
    "amount",
    "currency",
    "warehouse",
    "country",
];

/// What a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Target {
    /// A product variant (numeric id).
    Variant(i64),
    /// Every variant of a product (numeric id).
    Product(i64),
    /// The variant with this SKU, resolved at import.
    Sku(String),
}

impl Target {
    /// Parses `variant:123`, `product:45` or `sku:ABC-1`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("target {text:?}: expected variant:<id>, product:<id> or sku:<sku>");
        let (kind, value) = text.split_once(':').ok_or_else(bad)?;
        let id = || value.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(bad);
        match kind {
            "variant" => Ok(Target::Variant(id()?)),
            "product" => Ok(Target::Product(id()?)),
            "sku" if !value.is_empty() => Ok(Target::Sku(value.to_owned())),
            _ => Err(bad()),
        }
    }

    /// The table's (`target_kind`, `target_id`); `None` for an unresolved SKU.
    pub fn key(&self) -> Option<(&'static str, i64)> {
        match self {
            Target::Variant(id) => Some(("variant", *id)),
            Target::Product(id) => Some(("product", *id)),
            Target::Sku(_) => None,
        }
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        match self {
            Target::Variant(id) => format!("variant:{id}"),
            Target::Product(id) => format!("product:{id}"),
            Target::Sku(s) => format!("sku:{s}"),
        }
    }
}

/// Which week or month a quota counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Period {
    /// The calendar week (UTC, from Monday).
    Week,
    /// The calendar month (UTC).
    Month,
}

impl Period {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Week => "week",
            Period::Month => "month",
        }
    }
}

/// One checked rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Rule {
    /// A price break: `unit_price` (decimal text, ≥ 0) from `min_quantity` units.
    Price {
        /// The buyer.
        location: String,
        /// The variant or product.
        target: Target,
        /// From this many units of the variant in the cart.
        min_quantity: i32,
        /// The unit price, decimal text.
        unit_price: String,
    },
    /// Case pack, minimum and maximum per line.
    Limits {
        /// The buyer.
        location: String,
        /// The variant or product.
        target: Target,
        /// Quantities must be multiples of this.
        increment: i32,
        /// Minimum per line.
        min_quantity: i32,
        /// Maximum per line.
        max_quantity: Option<i32>,
    },
    /// A quota per period.
    Quota {
        /// The buyer.
        location: String,
        /// The variant or product.
        target: Target,
        /// Units per variant per period.
        quantity: i32,
        /// The period.
        period: Period,
    },
    /// The minimum order value of a buyer.
    OrderMinimum {
        /// The buyer.
        location: String,
        /// The amount, decimal text.
        amount: String,
        /// Its currency.
        currency: String,
    },
    /// A warehouse allowed to ship the SKU (no such row: any warehouse).
    SkuWarehouse {
        /// The variant or product.
        target: Target,
        /// The Shopify location id.
        warehouse: i64,
    },
    /// Units of the SKU held back from checkout: at one warehouse, or (warehouse 0) from its
    /// total.
    SafetyBuffer {
        /// The variant or product.
        target: Target,
        /// The Shopify location id, or 0 for the SKU's total.
        warehouse: i64,
        /// Units held back.
        quantity: i32,
    },
    /// A country the SKU may be sold to (no such row: anywhere).
    SkuRegion {
        /// The variant or product.
        target: Target,
        /// ISO 3166-1 alpha-2.
        country: String,
    },
    /// A warehouse serves buyers in a country.
    Routing {
        /// The Shopify location id.
        warehouse: i64,
        /// ISO 3166-1 alpha-2.
        country: String,
    },
}

impl Rule {
    /// The buyer a rule is about (`None`: shop-level rules, which concern every buyer).
    pub fn location(&self) -> Option<&str> {
        match self {
            Rule::Price { location, .. }
            | Rule::Limits { location, .. }
            | Rule::Quota { location, .. }
            | Rule::OrderMinimum { location, .. } => Some(location),
            _ => None,
        }
    }

    /// The target, for rules that have one.
    pub fn target_mut(&mut self) -> Option<&mut Target> {
        match self {
            Rule::Price { target, .. }
            | Rule::Limits { target, .. }
            | Rule::Quota { target, .. }
            | Rule::SkuWarehouse { target, .. }
            | Rule::SafetyBuffer { target, .. }
            | Rule::SkuRegion { target, .. } => Some(target),
            _ => None,
        }
    }

    /// What identifies the rule in its table (two rows with one key conflict).
    pub fn identity(&self) -> String {
        match self {
            Rule::Price {
                location,
                target,
                min_quantity,
                ..
            } => format!("price {location} {} from {min_quantity}", target.to_text()),
            Rule::Limits {
                location, target, ..
            } => format!("limits {location} {}", target.to_text()),
            Rule::Quota {
                location, target, ..
            } => format!("quota {location} {}", target.to_text()),
            Rule::OrderMinimum { location, .. } => format!("order_minimum {location}"),
            Rule::SkuWarehouse { target, warehouse } => {
                format!("sku_warehouse {} {warehouse}", target.to_text())
            }
            Rule::SafetyBuffer {
                target, warehouse, ..
            } => format!("safety_buffer {} {warehouse}", target.to_text()),
            Rule::SkuRegion { target, country } => {
                format!("sku_region {} {country}", target.to_text())
            }
            Rule::Routing { warehouse, country } => format!("routing {warehouse} {country}"),
        }
    }

    /// The rule as a row of the file format (empty fields left out).
    pub fn to_row(&self) -> BTreeMap<&'static str, String> {
        let mut row = BTreeMap::new();
        let mut put = |k: &'static str, v: String| {
            row.insert(k, v);
        };
        match self {
            Rule::Price {
                location,
                target,
                min_quantity,
                unit_price,
            } => {
                put("rule", "price".into());
                put("company_location", location.clone());
                put("target", target.to_text());
                put("min_quantity", min_quantity.to_string());
                put("unit_price", unit_price.clone());
            }
            Rule::Limits {
                location,
                target,
                increment,
                min_quantity,
                max_quantity,
            } => {
                put("rule", "limits".into());
                put("company_location", location.clone());
                put("target", target.to_text());
                put("increment", increment.to_string());
                put("min_quantity", min_quantity.to_string());
                if let Some(m) = max_quantity {
                    put("max_quantity", m.to_string());
                }
            }
            Rule::Quota {
                location,
                target,
                quantity,
                period,
            } => {
                put("rule", "quota".into());
                put("company_location", location.clone());
                put("target", target.to_text());
                put("quantity", quantity.to_string());
                put("period", period.as_str().into());
            }
            Rule::OrderMinimum {
                location,
                amount,
                currency,
            } => {
                put("rule", "order_minimum".into());
                put("company_location", location.clone());
                put("amount", amount.clone());
                put("currency", currency.clone());
            }
            Rule::SkuWarehouse { target, warehouse } => {
                put("rule", "sku_warehouse".into());
                put("target", target.to_text());
                put("warehouse", warehouse.to_string());
            }
            Rule::SafetyBuffer {
                target,
                warehouse,
                quantity,
            } => {
                put("rule", "safety_buffer".into());
                put("target", target.to_text());
                if *warehouse != 0 {
                    put("warehouse", warehouse.to_string());
                }
                put("quantity", quantity.to_string());
            }
            Rule::SkuRegion { target, country } => {
                put("rule", "sku_region".into());
                put("target", target.to_text());
                put("country", country.clone());
            }
            Rule::Routing { warehouse, country } => {
                put("rule", "routing".into());
                put("warehouse", warehouse.to_string());
                put("country", country.clone());
            }
        }
        row
    }
}

/// A bad row: its number (1 = the first rule; for CSV the line after the header) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// The row number (0: the file as a whole, e.g. its header).
    pub row: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.row == 0 {
            write!(f, "file: {}", self.message)
        } else {
            write!(f, "row {}: {}", self.row, self.message)
        }
    }
}

/// The file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
}

impl Format {
    /// From a file name's extension.
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// The raw rows of a file, as field → text (empty fields absent).
fn raw_rows(text: &str, format: Format) -> Result<Vec<HashMap<String, String>>, RowError> {
    let file_error = |message: String| RowError { row: 0, message };
    match format {
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .flexible(false)
                .from_reader(text.as_bytes());
            let headers = reader
                .headers()
                .map_err(|e| file_error(format!("header: {e}")))?
                .clone();
            if let Some(h) = headers.iter().find(|h| !COLUMNS.contains(h)) {
                return Err(file_error(format!(
                    "unknown column {h:?} (columns: {})",
                    COLUMNS.join(", ")
                )));
            }
            let mut rows = Vec::new();
            for (i, record) in reader.records().enumerate() {
                let record = record.map_err(|e| RowError {
                    row: i + 1,
                    message: e.to_string(),
                })?;
                rows.push(
                    headers
                        .iter()
                        .zip(record.iter())
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(h, v)| (h.to_owned(), v.to_owned()))
                        .collect(),
                );
            }
            Ok(rows)
        }
        Format::Json => {
            let values: Vec<serde_json::Map<String, serde_json::Value>> =
                serde_json::from_str(text)
                    .map_err(|e| file_error(format!("expected a JSON array of objects: {e}")))?;
            values
                .into_iter()
                .enumerate()
                .map(|(i, obj)| {
                    obj.into_iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| {
                            let text = match v {
                                serde_json::Value::String(s) => s,
                                serde_json::Value::Number(n) => n.to_string(),
                                other => {
                                    return Err(RowError {
                                        row: i + 1,
                                        message: format!(
                                            "field {k:?}: {other} is not a string or number"
                                        ),
                                    })
                                }
                            };
                            Ok((k, text))
                        })
                        .filter(|r| r.as_ref().map_or(true, |(_, v)| !v.is_empty()))
                        .collect()
                })
                .collect()
        }
    }
}

/// Parses and checks every row; all problems are returned, each with its row number.
pub fn parse(text: &str, format: Format) -> Result<Vec<Rule>, Vec<RowError>> {
    let rows = raw_rows(text, format).map_err(|e| vec![e])?;
    let mut rules = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let n = i + 1;
        match rule(row) {
            Ok(r) => {
                if let Some(first) = seen.insert(r.identity(), n) {
                    errors.push(RowError {
                        row: n,
                        message: format!("same rule as row {first} ({})", r.identity()),
                    });
                }
                rules.push(r);
            }
            Err(messages) => errors.extend(
                messages
                    .into_iter()
                    .map(|message| RowError { row: n, message }),
            ),
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

/// Checks rows already split into fields (the admin API's JSON body).
pub fn parse_rows(
    rows: &[serde_json::Map<String, serde_json::Value>],
) -> Result<Vec<Rule>, Vec<RowError>> {
    let text = serde_json::to_string(rows).map_err(|e| {
        vec![RowError {
            row: 0,
            message: e.to_string(),
        }]
    })?;
    parse(&text, Format::Json)
}

/// One row to a rule, or every problem found in it.
fn rule(row: &HashMap<String, String>) -> Result<Rule, Vec<String>> {
    let mut errors = Vec::new();
    if let Some(k) = row.keys().find(|k| !COLUMNS.contains(&k.as_str())) {
        errors.push(format!("unknown field {k:?}"));
    }
    let Some(kind) = row.get("rule") else {
        errors.push(
            "field \"rule\" is required: price, limits, quota, order_minimum, sku_warehouse, safety_buffer, sku_region or routing"
                .into(),
        );
        return Err(errors);
    };
    let (required, optional): (&[&str], &[&str]) = match kind.as_str() {
        "price" => (
            &["company_location", "target", "min_quantity", "unit_price"],
            &[],
        ),
        "limits" => (
            &["company_location", "target"],
            &["increment", "min_quantity", "max_quantity"],
        ),
        "quota" => (&["company_location", "target", "quantity", "period"], &[]),
        "order_minimum" => (&["company_location", "amount", "currency"], &[]),
        "sku_warehouse" => (&["target", "warehouse"], &[]),
        "safety_buffer" => (&["target", "quantity"], &["warehouse"]),
        "sku_region" => (&["target", "country"], &[]),
        "routing" => (&["warehouse", "country"], &[]),
        other => {
            errors.push(format!(
                "unknown rule {other:?}: expected price, limits, quota, order_minimum, sku_warehouse, safety_buffer, sku_region or routing"
            ));
            return Err(errors);
        }
    };
    for f in required {
        if !row.contains_key(*f) {
            errors.push(format!("{kind}: field {f:?} is required"));
        }
    }
    for f in row.keys() {
        let f = f.as_str();
        if f != "rule" && COLUMNS.contains(&f) && !required.contains(&f) && !optional.contains(&f) {
            errors.push(format!("{kind}: field {f:?} does not apply"));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut check = |r: Result<(), String>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    let get = |f: &str| row.get(f).map(String::as_str);
    let location = get("company_location")
        .map(str::to_owned)
        .unwrap_or_default();
    if get("company_location").is_some() {
        let ok = location
            .strip_prefix(LOCATION_GID_PREFIX)
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        check(ok.then_some(()).ok_or_else(|| {
            format!("company_location {location:?}: expected {LOCATION_GID_PREFIX}<id>")
        }));
    }
    let target = get("target").map(Target::parse);
    let target = match target {
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            check(Err(e));
            Target::Variant(0)
        }
        None => Target::Variant(0),
    };
    let mut int = |f: &str, min: i64| -> i64 {
        match get(f).map(|v| (v, v.parse::<i64>())) {
            None => 0,
            Some((_, Ok(n))) if n >= min && n <= i64::from(i32::MAX) => n,
            Some((v, _)) => {
                errors.push(format!("{f} {v:?}: expected a whole number ≥ {min}"));
                0
            }
        }
    };
    let min_quantity = int("min_quantity", if kind == "price" { 1 } else { 0 }) as i32;
    let increment = if row.contains_key("increment") {
        int("increment", 1) as i32
    } else {
        1
    };
    let max_quantity = row
        .contains_key("max_quantity")
        .then(|| int("max_quantity", 0) as i32);
    let quantity = int("quantity", 0) as i32;
    let warehouse = int("warehouse", 1);
    if let Some(max) = max_quantity.filter(|m| *m < min_quantity) {
        errors.push(format!(
            "max_quantity {max} is below min_quantity {min_quantity}"
        ));
    }
    let decimal = |f: &str, errors: &mut Vec<String>| -> String {
        let v = get(f).unwrap_or_default();
        let ok = {
            let (int, frac) = v.split_once('.').unwrap_or((v, ""));
            !int.is_empty()
                && int.len() <= 12
                && frac.len() <= 2
                && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        };
        if !ok && get(f).is_some() {
            errors.push(format!(
                "{f} {v:?}: expected a non-negative amount with at most 2 decimals, e.g. 12.50"
            ));
        }
        v.to_owned()
    };
    let unit_price = decimal("unit_price", &mut errors);
    let amount = decimal("amount", &mut errors);
    let currency = get("currency").unwrap_or_default().to_owned();
    if get("currency").is_some() && CurrencyCode::parse(&currency).is_none() {
        errors.push(format!(
            "currency {currency:?}: expected an ISO code like USD"
        ));
    }
    let country = get("country").unwrap_or_default().to_owned();
    if get("country").is_some()
        && !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()))
    {
        errors.push(format!(
            "country {country:?}: expected an ISO 3166 alpha-2 code like US"
        ));
    }
    let period = match get("period") {
        Some("week") => Period::Week,
        Some("month") | None => Period::Month,
        Some(other) => {
            errors.push(format!("period {other:?}: expected week or month"));
            Period::Month
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(match kind.as_str() {
        "price" => Rule::Price {
            location,
            target,
            min_quantity,
            unit_price,
        },
        "limits" => Rule::Limits {
            location,
            target,
            increment,
            min_quantity,
            max_quantity,
        },
        "quota" => Rule::Quota {
            location,
            target,
            quantity,
            period,
        },
        "order_minimum" => Rule::OrderMinimum {
            location,
            amount,
            currency,
        },
        "sku_warehouse" => Rule::SkuWarehouse { target, warehouse },
        "safety_buffer" => Rule::SafetyBuffer {
            target,
            warehouse,
            quantity,
        },
        "sku_region" => Rule::SkuRegion { target, country },
        _ => Rule::Routing { warehouse, country },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_row_is_reported_with_its_number_and_good_rows_parse() {
        let csv = "rule,company_location,target,min_quantity,unit_price,increment,max_quantity,quantity,period\n\
                   price,gid://shopify/CompanyLocation/1,variant:11,10,8.50,,,,\n\
                   limits,gid://shopify/CompanyLocation/1,product:1,6,,0,2,,\n\
                   quota,gid://shopify/CompanyLocation/1,sku:GLV-S,,,,,50,fortnight\n\
                   price,gid://shopify/Company/1,variant:x,0,-1,,,,\n\
                   quota,gid://shopify/CompanyLocation/1,variant:11,,,,,5,week\n";
        let errors = parse(csv, Format::Csv).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "row 2: increment \"0\": expected a whole number ≥ 1",
                "row 2: max_quantity 2 is below min_quantity 6",
                "row 3: period \"fortnight\": expected week or month",
                "row 4: company_location \"gid://shopify/Company/1\": expected gid://shopify/CompanyLocation/<id>",
                "row 4: target \"variant:x\": expected variant:<id>, product:<id> or sku:<sku>",
                "row 4: min_quantity \"0\": expected a whole number ≥ 1",
                "row 4: unit_price \"-1\": expected a non-negative amount with at most 2 decimals, e.g. 12.50",
            ]
        );
    }

    #[test]
    fn json_rows_accept_numbers_and_refuse_misplaced_fields_and_duplicates() {
        let json = r#"[
          {"rule": "limits", "company_location": "gid://shopify/CompanyLocation/1", "target": "variant:11", "increment": 6, "max_quantity": 600},
          {"rule": "routing", "warehouse": 501, "country": "US", "target": "variant:11"},
          {"rule": "limits", "company_location": "gid://shopify/CompanyLocation/1", "target": "variant:11", "increment": 12},
          {"rule": "nope"}
        ]"#;
        let errors = parse(json, Format::Json).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert_eq!(text[0], "row 2: routing: field \"target\" does not apply");
        assert!(
            text[1].starts_with("row 3: same rule as row 1"),
            "{}",
            text[1]
        );
        assert!(
            text[2].starts_with("row 4: unknown rule \"nope\""),
            "{}",
            text[2]
        );

        let json = r#"[
          {"rule": "limits", "company_location": "gid://shopify/CompanyLocation/1", "target": "variant:11", "increment": 6, "max_quantity": 600},
          {"rule": "routing", "warehouse": 501, "country": "US"},
          {"rule": "limits", "company_location": "gid://shopify/CompanyLocation/1", "target": "variant:12", "increment": 12},
          {"rule": "order_minimum", "company_location": "gid://shopify/CompanyLocation/1", "amount": "500", "currency": "EUR"}
        ]"#;
        let ok = parse(json, Format::Json).unwrap();
        assert_eq!(ok.len(), 4);
        assert_eq!(
            ok[0],
            Rule::Limits {
                location: "gid://shopify/CompanyLocation/1".into(),
                target: Target::Variant(11),
                increment: 6,
                min_quantity: 0,
                max_quantity: Some(600),
            }
        );
    }
}
