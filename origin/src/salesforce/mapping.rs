//! The Shopify → Salesforce mapping, declared once, and the field ownership it obeys.
//!
//! | Shopify (origin table) | Salesforce | Keyed by (external id) | Relationship (by external id) |
//! |---|---|---|---|
//! | company (`companies`) | Account | `Shopify_Company_Id__c` | — |
//! | B2B customer (`customers`) | Contact | `Shopify_Customer_Id__c` | `Account` via the company of the customer's latest order |
//! | order (`orders`) | Order | `Shopify_Order_Id__c` | `Account` via `Shopify_Company_Id__c` |
//!
//! Not mapped yet (#14): company locations, products/variants → Product2 + PricebookEntry,
//! order lines → OrderItems, cancellations/refunds → Order status and amounts.
//!
//! **Ownership.** [`OWNERSHIP`] names, for every field of the mapped objects that either
//! system writes, which one owns it. A record built here contains only Shopify-owned fields;
//! `tests` check it, so a Salesforce-owned field (the Account's owner, rating, description…)
//! can never be overwritten by the sync.

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
    ("Order", "Shopify_Order_Id__c", Owner::Shopify),
    ("Order", "Account", Owner::Shopify),
    ("Order", "EffectiveDate", Owner::Shopify),
    ("Order", "Status", Owner::Shopify),
    ("Order", "PoNumber", Owner::Shopify),
    ("Order", "OwnerId", Owner::Salesforce),
    ("Order", "Description", Owner::Salesforce),
];

impl Object {
    /// The sObject and its external id field.
    pub fn sobject(self) -> (&'static str, &'static str) {
        match self {
            Object::Account => ("Account", "Shopify_Company_Id__c"),
            Object::Contact => ("Contact", "Shopify_Customer_Id__c"),
            Object::Product => ("Product2", "Shopify_Variant_Id__c"),
            Object::Order => ("Order", "Shopify_Order_Id__c"),
        }
    }
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
    /// This object is not mapped yet.
    #[error("{0:?} records are not mapped to Salesforce yet")]
    NotMapped(Object),
    /// Reading the row failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The Salesforce record for `object` `key` of `shop`, read from origin's tables now (so the
/// latest version goes), with Shopify-owned fields only.
pub async fn record(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    object: Object,
    key: &str,
) -> Result<Value, MappingError> {
    let record = match object {
        Object::Account => account(conn, shop, key).await?,
        Object::Contact => contact(conn, shop, key).await?,
        Object::Order => order(conn, shop, key).await?,
        Object::Product => return Err(MappingError::NotMapped(object)),
    };
    check_ownership(object.sobject().0, &record)?;
    Ok(record)
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
    let company = super::accounts::profile(conn, shop, gid, &name).await?;
    let profile = wholesail_matching::Profile::of_company(&company);
    Ok(json!({
        "Shopify_Company_Id__c": company_number(gid)?,
        "Name": name,
        "Wholesail_Name_Key__c": profile.name.to_string(),
        "Wholesail_Domain__c": profile.domains.first().map(|d| d.as_str()),
    }))
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

async fn order(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    key: &str,
) -> Result<Value, MappingError> {
    let id = numeric_key("order", key)?;
    let row = sqlx::query!(
        r#"SELECT company_id, po_number, cancelled_at,
                  to_char(coalesce(processed_at, created_at, applied_at) AT TIME ZONE 'UTC',
                          'YYYY-MM-DD') AS "effective_date!"
         FROM orders WHERE shop = $1 AND id = $2 AND deleted_at IS NULL"#,
        shop.as_str(),
        id,
    )
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| MappingError::Missing("order", key.to_owned()))?;
    let company = row.company_id.ok_or_else(|| {
        MappingError::Incomplete(format!(
            "order {id} has no company: only B2B orders are sent to Salesforce"
        ))
    })?;
    Ok(json!({
        "Shopify_Order_Id__c": id.to_string(),
        "Account": { "Shopify_Company_Id__c": company.to_string() },
        "EffectiveDate": row.effective_date,
        "Status": "Draft",
        "PoNumber": row.po_number,
    }))
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
        for object in [Object::Account, Object::Contact, Object::Order] {
            let (sobject, external) = object.sobject();
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
