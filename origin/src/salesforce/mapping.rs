//! The Shopify → Salesforce mapping, declared once, and the field ownership it obeys.
//!
//! | Shopify (origin table) | Salesforce | Keyed by (external id) | Relationship (by external id) |
//! |---|---|---|---|
//! | company (`companies`) | Account | `Shopify_Company_Id__c` | — |
//! | company location (`company_locations`) | the company's Account: `ShippingCity`, `ShippingState`, `ShippingPostalCode`, `ShippingCountry` of its first location | — | — |
//! | B2B customer (`customers`) | Contact | `Shopify_Customer_Id__c` | `Account` via the company of the customer's latest order |
//! | variant (`variants`, `products`) | Product2 | `Shopify_Variant_Id__c` | — |
//! | variant price | PricebookEntry (standard price book) | `Shopify_Variant_Id__c` | `Product2` via `Shopify_Variant_Id__c` |
//! | order (`orders`) | Order (standard price book) | `Shopify_Order_Id__c` | `Account` via `Shopify_Company_Id__c` |
//! | order line (`order_lines`) | OrderItem | `Shopify_Line_Id__c` | `Order` via `Shopify_Order_Id__c`, `PricebookEntry` via `Shopify_Variant_Id__c` |
//! | cancellation / refund (`orders`) | Order `Status` (`Cancelled` once cancelled, else `Draft`), `Shopify_Financial_Status__c` (`paid`, `partially_refunded`, `refunded`, `voided` …), `Shopify_Total__c` | — | — |
//!
//! An outbox row is one Shopify record and may send several Salesforce records ([`Part`]): a
//! product sends a Product2 and a PricebookEntry per variant, an order its Order and an
//! OrderItem per line. Lines without a variant (custom line items) have no catalog product and
//! are not sent. A cancelled order's `Status` is `Cancelled`: the package adds that value (in
//! the Draft status category) to the org's Order Status picklist. Not mapped (#14): a
//! company's second and later locations (no child Accounts), removed variants and lines (their
//! records stay in Salesforce), refunded amounts per line (origin keeps the order's financial
//! status and total, not its refund transactions).
//!
//! **Ownership.** [`OWNERSHIP`] names, for every field of the mapped objects that either
//! system writes, which one owns it. A record built here contains only Shopify-owned fields;
//! `tests` check it, so a Salesforce-owned field (the Account's owner, rating, description…)
//! can never be overwritten by the sync.
//!
//! **Create-only fields.** An order item's order and price book entry, and a price book
//! entry's book and product, can be set only when the record is created; an upsert that
//! updates a record naming them fails (`INVALID_FIELD_FOR_INSERT_UPDATE`). [`Part::for_update`]
//! removes them ([`CREATE_ONLY`]) from records that already exist.

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use sqlx::PgConnection;
use wholesail_webhook::{Gid, ShopDomain};

use super::outbox::Object;

/// Which system owns a field: the only one that may write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Written by the sync from Shopify's data; an edit in Salesforce is drift.
    Shopify,
    /// Written by people and automation in Salesforce; the sync never sends it.
    Salesforce,
}

/// Field ownership of the mapped objects: (sObject, field, owner).
pub const OWNERSHIP: &[(&str, &str, Owner)] = &[
    ("Account", "Shopify_Company_Id__c", Owner::Shopify),
    ("Account", "Name", Owner::Shopify),
    ("Account", "Tax_Id__c", Owner::Shopify),
    ("Account", "Wholesail_Name_Key__c", Owner::Shopify),
    ("Account", "Wholesail_Domain__c", Owner::Shopify),
    ("Account", "ShippingCity", Owner::Shopify),
    ("Account", "ShippingState", Owner::Shopify),
    ("Account", "ShippingPostalCode", Owner::Shopify),
    ("Account", "ShippingCountry", Owner::Shopify),
    ("Account", "OwnerId", Owner::Salesforce),
    ("Account", "Rating", Owner::Salesforce),
    ("Account", "Description", Owner::Salesforce),
    ("Account", "Industry", Owner::Salesforce),
    ("Account", "Phone", Owner::Salesforce),
    ("Contact", "Shopify_Customer_Id__c", Owner::Shopify),
    ("Contact", "FirstName", Owner::Shopify),
    ("Contact", "LastName", Owner::Shopify),
    ("Contact", "Email", Owner::Shopify),
    ("Contact", "Phone", Owner::Shopify),
    ("Contact", "Account", Owner::Shopify),
    ("Contact", "OwnerId", Owner::Salesforce),
    ("Contact", "Title", Owner::Salesforce),
    ("Product2", "Shopify_Variant_Id__c", Owner::Shopify),
    ("Product2", "Name", Owner::Shopify),
    ("Product2", "ProductCode", Owner::Shopify),
    ("Product2", "StockKeepingUnit", Owner::Shopify),
    ("Product2", "IsActive", Owner::Shopify),
    ("Product2", "Family", Owner::Salesforce),
    ("Product2", "Description", Owner::Salesforce),
    ("PricebookEntry", "Shopify_Variant_Id__c", Owner::Shopify),
    ("PricebookEntry", "Pricebook2Id", Owner::Shopify),
    ("PricebookEntry", "Product2", Owner::Shopify),
    ("PricebookEntry", "UnitPrice", Owner::Shopify),
    ("PricebookEntry", "IsActive", Owner::Shopify),
    ("Order", "Shopify_Order_Id__c", Owner::Shopify),
    ("Order", "Account", Owner::Shopify),
    ("Order", "Pricebook2Id", Owner::Shopify),
    ("Order", "EffectiveDate", Owner::Shopify),
    ("Order", "Status", Owner::Shopify),
    ("Order", "PoNumber", Owner::Shopify),
    ("Order", "Shopify_Financial_Status__c", Owner::Shopify),
    ("Order", "Shopify_Total__c", Owner::Shopify),
    ("Order", "OwnerId", Owner::Salesforce),
    ("Order", "Description", Owner::Salesforce),
    ("OrderItem", "Shopify_Line_Id__c", Owner::Shopify),
    ("OrderItem", "Order", Owner::Shopify),
    ("OrderItem", "PricebookEntry", Owner::Shopify),
    ("OrderItem", "Quantity", Owner::Shopify),
    ("OrderItem", "UnitPrice", Owner::Shopify),
    ("OrderItem", "Description", Owner::Salesforce),
];

/// Fields Salesforce accepts on create only: (sObject, field as the record names it).
pub const CREATE_ONLY: &[(&str, &str)] = &[
    ("PricebookEntry", "Pricebook2Id"),
    ("PricebookEntry", "Product2"),
    ("OrderItem", "Order"),
    ("OrderItem", "PricebookEntry"),
];

/// A Salesforce object the sync writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SObject {
    /// A company.
    Account,
    /// A B2B customer.
    Contact,
    /// A variant.
    Product2,
    /// A variant's price in the standard price book.
    PricebookEntry,
    /// An order.
    Order,
    /// An order line.
    OrderItem,
}

impl SObject {
    /// Every object, parents first: the order a batch is sent in.
    pub const ALL: [SObject; 6] = [
        SObject::Account,
        SObject::Contact,
        SObject::Product2,
        SObject::PricebookEntry,
        SObject::Order,
        SObject::OrderItem,
    ];

    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            SObject::Account => "Account",
            SObject::Contact => "Contact",
            SObject::Product2 => "Product2",
            SObject::PricebookEntry => "PricebookEntry",
            SObject::Order => "Order",
            SObject::OrderItem => "OrderItem",
        }
    }

    /// The external id field records are upserted by.
    pub fn external_id(self) -> &'static str {
        match self {
            SObject::Account => "Shopify_Company_Id__c",
            SObject::Contact => "Shopify_Customer_Id__c",
            SObject::Product2 | SObject::PricebookEntry => "Shopify_Variant_Id__c",
            SObject::Order => "Shopify_Order_Id__c",
            SObject::OrderItem => "Shopify_Line_Id__c",
        }
    }
}

/// One Salesforce record an outbox row sends.
#[derive(Clone, Debug)]
pub struct Part {
    /// Its object.
    pub sobject: SObject,
    /// Its fields, the external id included.
    pub record: Value,
    /// The part of the same row that must be saved first (an entry's product, an item's
    /// order).
    pub parent: Option<usize>,
}

impl Part {
    /// The external id's value.
    pub fn key(&self) -> &str {
        self.record[self.sobject.external_id()]
            .as_str()
            .unwrap_or_default()
    }

    /// Drops the create-only fields: the record exists already.
    pub fn for_update(&mut self) {
        if let Some(fields) = self.record.as_object_mut() {
            for (_, field) in CREATE_ONLY
                .iter()
                .filter(|(o, _)| *o == self.sobject.name())
            {
                fields.remove(*field);
            }
        }
    }
}

/// What records need from the org itself.
#[derive(Clone, Copy, Debug)]
pub struct OrgContext<'a> {
    /// The standard price book's Id (orders and price book entries live in it).
    pub standard_pricebook: &'a str,
}

/// Why a record cannot be sent (permanent: it goes to the dead letters with this reason).
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The origin row is gone (deleted or redacted since it was enqueued).
    #[error("{0} {1} no longer exists in origin")]
    Missing(&'static str, String),
    /// The record lacks what Salesforce requires.
    #[error("{0}")]
    Incomplete(String),
    /// The mapping set a field Shopify does not own.
    #[error("{0}.{1} is not a Shopify-owned field; the sync does not write it")]
    NotOwned(String, String),
    /// Reading the row failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The Salesforce records for `object` `key` of `shop`, read from origin's tables now (so the
/// latest version goes), parents first, with Shopify-owned fields only.
pub async fn records(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    object: Object,
    key: &str,
    org: OrgContext<'_>,
) -> Result<Vec<Part>, MappingError> {
    let single = |sobject, record| {
        vec![Part {
            sobject,
            record,
            parent: None,
        }]
    };
    let parts = match object {
        Object::Account => single(SObject::Account, account(conn, shop, key).await?),
        Object::Contact => single(SObject::Contact, contact(conn, shop, key).await?),
        Object::Product => product(conn, shop, key, org).await?,
        Object::Order => {
            let id = numeric_key("order", key)?;
            let mut one = orders(conn, shop, &[id], org).await?;
            one.remove(&id).expect("every id has an entry")?
        }
    };
    owned(parts)
}

/// `parts`, once each is checked to set Shopify-owned fields only.
pub fn owned(parts: Vec<Part>) -> Result<Vec<Part>, MappingError> {
    for part in &parts {
        check_ownership(part.sobject.name(), &part.record)?;
    }
    Ok(parts)
}

/// A company's numeric id from its GID (what `Shopify_Company_Id__c` and orders hold).
fn company_number(gid: &str) -> Result<String, MappingError> {
    Gid::number_of(gid, "Company")
        .map(|n| n.to_string())
        .map_err(|e| MappingError::Incomplete(format!("company id {gid:?}: {e}")))
}

/// A record key that must be a Shopify numeric id.
fn numeric_key(kind: &str, key: &str) -> Result<i64, MappingError> {
    key.parse()
        .map_err(|_| MappingError::Incomplete(format!("{kind} id {key:?} is not a number")))
}

/// Refuses a record that sets a field Shopify does not own (a mapping mistake must not
/// overwrite what people maintain in Salesforce).
pub fn check_ownership(sobject: &str, record: &Value) -> Result<(), MappingError> {
    let Some(fields) = record.as_object() else {
        return Err(MappingError::Incomplete(format!(
            "{sobject} record is not an object"
        )));
    };
    for field in fields.keys() {
        if !OWNERSHIP.contains(&(sobject, field.as_str(), Owner::Shopify)) {
            return Err(MappingError::NotOwned(sobject.to_owned(), field.clone()));
        }
    }
    Ok(())
}

async fn account(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    gid: &str,
) -> Result<Value, MappingError> {
    let row = sqlx::query!(
        "SELECT name FROM companies
         WHERE shop = $1 AND admin_graphql_api_id = $2 AND deleted_at IS NULL",
        shop.as_str(),
        gid,
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| MappingError::Missing("company", gid.to_owned()))?;
    let name = row
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| MappingError::Incomplete(format!("company {gid} has no name")))?;
    // The match keys, so that later companies find this Account (see `accounts`).
    // The first location's shipping address (most B2B companies have one location).
    let shipping = sqlx::query!(
        "SELECT shipping_city, shipping_province_code, shipping_zip, shipping_country_code
         FROM company_locations
         WHERE shop = $1 AND company_admin_graphql_api_id = $2 AND deleted_at IS NULL
         ORDER BY created_at NULLS LAST, admin_graphql_api_id LIMIT 1",
        shop.as_str(),
        gid,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let company = super::accounts::profile(conn, shop, gid, &name).await?;
    let profile = wholesail_matching::Profile::of_company(&company);
    let mut record = json!({
        "Shopify_Company_Id__c": company_number(gid)?,
        "Name": name,
        "Wholesail_Name_Key__c": profile.name.to_string(),
        "Wholesail_Domain__c": profile.domains.first().map(|d| d.as_str()),
    });
    if let Some(s) = shipping {
        record["ShippingCity"] = json!(s.shipping_city);
        record["ShippingState"] = json!(s.shipping_province_code);
        record["ShippingPostalCode"] = json!(s.shipping_zip);
        record["ShippingCountry"] = json!(s.shipping_country_code);
    }
    Ok(record)
}

async fn contact(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    key: &str,
) -> Result<Value, MappingError> {
    let id = numeric_key("customer", key)?;
    let row = sqlx::query!(
        "SELECT c.email, c.first_name, c.last_name, c.phone,
                (SELECT o.company_id FROM orders o
                 WHERE o.shop = c.shop AND o.customer_id = c.id AND o.company_id IS NOT NULL
                 ORDER BY o.created_at DESC NULLS LAST LIMIT 1) AS company_id
         FROM customers c
         WHERE c.shop = $1 AND c.id = $2 AND c.deleted_at IS NULL AND c.redacted_at IS NULL",
        shop.as_str(),
        id,
    )
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| MappingError::Missing("customer", key.to_owned()))?;
    // Salesforce requires a last name; a customer known only by email is named by it.
    let last_name = row
        .last_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| row.email.clone())
        .ok_or_else(|| MappingError::Incomplete(format!("customer {id} has no name or email")))?;
    let mut fields = Map::new();
    fields.insert("Shopify_Customer_Id__c".into(), json!(id.to_string()));
    fields.insert("LastName".into(), json!(last_name));
    fields.insert("FirstName".into(), json!(row.first_name));
    fields.insert("Email".into(), json!(row.email));
    fields.insert("Phone".into(), json!(row.phone));
    if let Some(company) = row.company_id {
        fields.insert(
            "Account".into(),
            json!({ "Shopify_Company_Id__c": company.to_string() }),
        );
    }
    Ok(Value::Object(fields))
}

/// A product's variants: a Product2 and its standard PricebookEntry each.
async fn product(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    key: &str,
    org: OrgContext<'_>,
) -> Result<Vec<Part>, MappingError> {
    let id = numeric_key("product", key)?;
    let product = sqlx::query!(
        "SELECT title, status FROM products WHERE shop = $1 AND id = $2 AND deleted_at IS NULL",
        shop.as_str(),
        id,
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| MappingError::Missing("product", key.to_owned()))?;
    let title = product
        .title
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| MappingError::Incomplete(format!("product {id} has no title")))?;
    let active = product
        .status
        .as_deref()
        .is_none_or(|s| s.eq_ignore_ascii_case("active"));
    // Salesforce currency fields are doubles on the wire (a JSON number).
    let variants = sqlx::query!(
        r#"SELECT id, sku, title, price::float8 AS price FROM variants
         WHERE shop = $1 AND product_id = $2 ORDER BY position NULLS LAST, id"#,
        shop.as_str(),
        id,
    )
    .fetch_all(conn)
    .await?;
    if variants.is_empty() {
        return Err(MappingError::Incomplete(format!(
            "product {id} has no variants"
        )));
    }
    let mut parts = Vec::with_capacity(variants.len() * 2);
    for v in variants {
        let price = v.price.ok_or_else(|| {
            MappingError::Incomplete(format!("variant {} of product {id} has no price", v.id))
        })?;
        let variant = v.id.to_string();
        let sku = v.sku.filter(|s| !s.trim().is_empty());
        parts.push(Part {
            sobject: SObject::Product2,
            record: json!({
                "Shopify_Variant_Id__c": variant,
                "Name": product_name(&title, v.title.as_deref()),
                "ProductCode": sku,
                "StockKeepingUnit": sku,
                "IsActive": active,
            }),
            parent: None,
        });
        parts.push(Part {
            sobject: SObject::PricebookEntry,
            record: json!({
                "Shopify_Variant_Id__c": variant,
                "Pricebook2Id": org.standard_pricebook,
                "Product2": { "Shopify_Variant_Id__c": variant },
                "UnitPrice": price,
                "IsActive": true,
            }),
            parent: Some(parts.len() - 1),
        });
    }
    Ok(parts)
}

/// `Title - Variant` (Shopify's single variant is `Default Title`: the title alone), within
/// Product2.Name's 255 characters.
fn product_name(title: &str, variant: Option<&str>) -> String {
    let name = match variant.map(str::trim) {
        Some(v) if !v.is_empty() && v != "Default Title" => format!("{title} - {v}"),
        _ => title.to_owned(),
    };
    name.chars().take(255).collect()
}

/// Orders `ids` of `shop` and their lines (OrderItems of the standard price book), read in
/// two queries whatever their number: each order's parts, or why it cannot be sent.
pub async fn orders(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    ids: &[i64],
    org: OrgContext<'_>,
) -> Result<HashMap<i64, Result<Vec<Part>, MappingError>>, sqlx::Error> {
    let heads = sqlx::query!(
        r#"SELECT id, company_id, po_number, cancelled_at IS NOT NULL AS "cancelled!",
                  financial_status, total_price::float8 AS total,
                  to_char(coalesce(processed_at, created_at, applied_at) AT TIME ZONE 'UTC',
                          'YYYY-MM-DD') AS "effective_date!"
         FROM orders WHERE shop = $1 AND id = ANY($2) AND deleted_at IS NULL"#,
        shop.as_str(),
        ids,
    )
    .fetch_all(&mut *conn)
    .await?;
    let lines = sqlx::query!(
        r#"SELECT l.order_id, l.id, l.variant_id AS "variant_id!", l.quantity,
                  l.price::float8 AS "price!", v.id IS NOT NULL AS "known!"
         FROM order_lines l
         LEFT JOIN variants v ON v.shop = l.shop AND v.id = l.variant_id
         WHERE l.shop = $1 AND l.order_id = ANY($2) AND l.variant_id IS NOT NULL
         ORDER BY l.order_id, l.position"#,
        shop.as_str(),
        ids,
    )
    .fetch_all(conn)
    .await?;
    let mut by_order: HashMap<i64, Vec<_>> = HashMap::new();
    for line in lines {
        by_order.entry(line.order_id).or_default().push(line);
    }
    let mut out: HashMap<i64, Result<Vec<Part>, MappingError>> = ids
        .iter()
        .map(|&id| (id, Err(MappingError::Missing("order", id.to_string()))))
        .collect();
    for row in heads {
        let id = row.id;
        let lines = by_order.remove(&id).unwrap_or_default();
        let Some(company) = row.company_id else {
            out.insert(
                id,
                Err(MappingError::Incomplete(format!(
                    "order {id} has no company: only B2B orders are sent to Salesforce"
                ))),
            );
            continue;
        };
        if let Some(unknown) = lines.iter().find(|l| !l.known) {
            out.insert(
                id,
                Err(MappingError::Incomplete(format!(
                    "order {id}: variant {} of line {} is not in origin's catalog (resync the \
                     catalog, then replay)",
                    unknown.variant_id, unknown.id
                ))),
            );
            continue;
        }
        let order_key = id.to_string();
        let mut parts = vec![Part {
            sobject: SObject::Order,
            record: json!({
                "Shopify_Order_Id__c": order_key,
                "Account": { "Shopify_Company_Id__c": company.to_string() },
                "Pricebook2Id": org.standard_pricebook,
                "EffectiveDate": row.effective_date,
                "Status": if row.cancelled { "Cancelled" } else { "Draft" },
                "PoNumber": row.po_number,
                "Shopify_Financial_Status__c": row.financial_status,
                "Shopify_Total__c": row.total,
            }),
            parent: None,
        }];
        parts.extend(lines.into_iter().map(|l| Part {
            sobject: SObject::OrderItem,
            record: json!({
                "Shopify_Line_Id__c": l.id.to_string(),
                "Order": { "Shopify_Order_Id__c": order_key },
                "PricebookEntry": { "Shopify_Variant_Id__c": l.variant_id.to_string() },
                "Quantity": l.quantity,
                "UnitPrice": l.price,
            }),
            parent: Some(0),
        }));
        out.insert(id, Ok(parts));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields a record sets, relationships included.
    fn written(sobject: &str) -> Vec<&'static str> {
        OWNERSHIP
            .iter()
            .filter(|(o, _, _)| *o == sobject)
            .map(|(_, f, _)| *f)
            .collect()
    }

    #[test]
    fn every_object_declares_its_external_id_as_shopify_owned() {
        for object in SObject::ALL {
            let (sobject, external) = (object.name(), object.external_id());
            assert!(
                OWNERSHIP.contains(&(sobject, external, Owner::Shopify)),
                "{sobject}.{external}"
            );
            assert!(written(sobject).len() > 1);
        }
    }

    #[test]
    fn a_record_with_a_salesforce_owned_field_is_refused() {
        let ok = json!({"Shopify_Company_Id__c": "1", "Name": "Acme"});
        assert!(check_ownership("Account", &ok).is_ok());
        let owner = json!({"Shopify_Company_Id__c": "1", "Name": "Acme", "OwnerId": "005x"});
        assert!(matches!(
            check_ownership("Account", &owner),
            Err(MappingError::NotOwned(_, f)) if f == "OwnerId"
        ));
        let unknown = json!({"Shopify_Order_Id__c": "1", "TotalAmount": 5});
        assert!(check_ownership("Order", &unknown).is_err());
    }

    #[test]
    fn create_only_fields_are_dropped_for_an_update() {
        for (sobject, field) in CREATE_ONLY {
            assert!(OWNERSHIP.contains(&(sobject, field, Owner::Shopify)));
        }
        let mut item = Part {
            sobject: SObject::OrderItem,
            record: json!({"Shopify_Line_Id__c": "1", "Order": {"Shopify_Order_Id__c": "2"},
                           "PricebookEntry": {"Shopify_Variant_Id__c": "3"}, "Quantity": 4}),
            parent: Some(0),
        };
        item.for_update();
        assert_eq!(
            item.record,
            json!({"Shopify_Line_Id__c": "1", "Quantity": 4})
        );
        assert_eq!(item.key(), "1");
    }

    #[test]
    fn a_variant_is_named_after_its_product() {
        assert_eq!(product_name("Bolt", Some("M6 / Zinc")), "Bolt - M6 / Zinc");
        assert_eq!(product_name("Bolt", Some("Default Title")), "Bolt");
        assert_eq!(product_name(&"x".repeat(300), None).len(), 255);
    }

    #[test]
    fn a_field_has_one_owner() {
        for (i, (o, f, _)) in OWNERSHIP.iter().enumerate() {
            assert!(
                !OWNERSHIP[i + 1..]
                    .iter()
                    .any(|(o2, f2, _)| o2 == o && f2 == f),
                "{o}.{f} listed twice"
            );
        }
    }
}
