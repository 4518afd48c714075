//! Before a buyer's first write, find its Contact in the Account its company was linked to:
//! the same email is the same person, never a second Contact.
//!
//! Only buyers never written before and whose company was **linked** to an existing Account
//! (`salesforce_links`) are looked at: an Account the sync created has only the Contacts the
//! sync wrote. One SOQL query per batch reads the Contacts of those Accounts, and
//! `wholesail_matching::contact::match_contact` decides:
//! - **one unlinked Contact with the email**: the external id and the other Shopify-owned
//!   fields are written onto it;
//! - **none**: the upsert creates the Contact under the Account (a new email at one of the
//!   Account's domains joins it; so does any other, since Shopify's company says this buyer is
//!   its contact: the reason is counted and logged);
//! - **several**: earlier duplicates in Salesforce; nothing is written until someone merges
//!   them (the row is a dead letter saying so, replayable after the merge).

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use wholesail_matching::contact::{match_contact, Contact, ContactMatch, ContactReview};
use wholesail_salesforce::Client;
use wholesail_webhook::ShopDomain;

use super::accounts::{link, ResolveError};

/// What to do with a buyer's Contact now.
#[derive(Debug, PartialEq, Eq)]
pub enum ContactResolution {
    /// Upsert by external id.
    Upsert,
    /// Linked just now to this existing Contact.
    Linked(String),
    /// Several Contacts of the Account have the email: these.
    Duplicates(Vec<String>),
}

/// A Contact of a linked Account as the query returns it.
#[derive(Deserialize)]
struct ContactRow {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Email")]
    email: Option<String>,
    #[serde(rename = "AccountId")]
    account: String,
    #[serde(rename = "Shopify_Customer_Id__c")]
    customer: Option<String>,
    #[serde(rename = "Account")]
    parent: Option<AccountFields>,
}

#[derive(Deserialize)]
struct AccountFields {
    #[serde(rename = "Website")]
    website: Option<String>,
    #[serde(rename = "Wholesail_Domain__c")]
    domain: Option<String>,
}

/// Resolves the buyers of one batch (`(customer id, record about to be upserted)` each).
/// `Err`: reading origin or Salesforce failed, nothing was decided.
pub async fn resolve_batch(
    pool: &PgPool,
    client: &Client,
    shop: &ShopDomain,
    buyers: &[(&str, &Value)],
) -> Result<Vec<Result<ContactResolution, ResolveError>>, ResolveError> {
    let mut resolved: Vec<Result<ContactResolution, ResolveError>> = buyers
        .iter()
        .map(|_| Ok(ContactResolution::Upsert))
        .collect();
    let accounts = linked_accounts(pool, shop, buyers).await?;
    if accounts.is_empty() {
        return Ok(resolved);
    }
    let list = accounts
        .values()
        .collect::<HashSet<_>>()
        .into_iter()
        .map(|id| format!("'{}'", id.replace('\'', "")))
        .collect::<Vec<_>>()
        .join(",");
    let rows: Vec<ContactRow> = client
        .query_all(format!(
            "SELECT Id, Email, AccountId, Shopify_Customer_Id__c, Account.Website, \
             Account.Wholesail_Domain__c FROM Contact WHERE AccountId IN ({list})"
        ))
        .await?;
    for (i, (key, record)) in buyers.iter().enumerate() {
        let (Some(account), Some(email)) = (accounts.get(*key), record["Email"].as_str()) else {
            continue;
        };
        let of_account: Vec<&ContactRow> = rows.iter().filter(|r| &r.account == account).collect();
        if of_account
            .iter()
            .any(|r| r.customer.as_deref() == Some(key))
        {
            continue; // written before (by an earlier run whose done mark was lost)
        }
        let mut domains: Vec<&str> = of_account
            .iter()
            .filter_map(|r| r.parent.as_ref())
            .take(1)
            .flat_map(|a| [a.website.as_deref(), a.domain.as_deref()])
            .flatten()
            .collect();
        domains.extend(
            of_account
                .iter()
                .filter(|r| r.customer.is_some())
                .filter_map(|r| r.email.as_deref()),
        );
        let unlinked: Vec<Contact> = of_account
            .iter()
            .filter(|r| r.customer.is_none())
            .filter_map(|r| {
                Some(Contact {
                    id: r.id.clone(),
                    email: r.email.clone()?,
                })
            })
            .collect();
        let decision = match match_contact(email, &domains, &unlinked) {
            Ok(m) => m,
            Err(_) => continue, // Salesforce refuses the address; the upsert says why
        };
        let label = match &decision {
            ContactMatch::Existing(_) => "linked",
            ContactMatch::Join(_) => "joined",
            ContactMatch::Review(ContactReview::ForeignDomain(_)) => "joined_foreign_domain",
            ContactMatch::Review(ContactReview::SeveralContacts(_)) => "duplicates",
        };
        metrics::counter!("wholesail_salesforce_contact_matches_total", "decision" => label)
            .increment(1);
        tracing::info!(%shop, customer = key, account, decision = label,
            "buyer matched against the Account's Contacts");
        resolved[i] = match decision {
            ContactMatch::Existing(id) => link(client, "Contact", &id, record)
                .await
                .map(|()| ContactResolution::Linked(id)),
            ContactMatch::Review(ContactReview::SeveralContacts(ids)) => {
                Ok(ContactResolution::Duplicates(ids))
            }
            ContactMatch::Join(_) | ContactMatch::Review(ContactReview::ForeignDomain(_)) => {
                Ok(ContactResolution::Upsert)
            }
        };
    }
    Ok(resolved)
}

/// The Account each never-written buyer's company was linked to (buyers of created Accounts,
/// or already written, are not in the map).
async fn linked_accounts(
    pool: &PgPool,
    shop: &ShopDomain,
    buyers: &[(&str, &Value)],
) -> Result<HashMap<String, String>, sqlx::Error> {
    let keys: Vec<String> = buyers.iter().map(|(k, _)| (*k).to_owned()).collect();
    let companies: Vec<String> = buyers
        .iter()
        .map(|(_, r)| {
            let number = r["Account"]["Shopify_Company_Id__c"].as_str().unwrap_or("");
            format!("gid://shopify/Company/{number}")
        })
        .collect();
    let rows = sqlx::query!(
        r#"SELECT b.key AS "key!", l.account_id AS "account!"
         FROM unnest($2::text[], $3::text[]) AS b(key, company)
         JOIN salesforce_links l
           ON l.shop = $1 AND l.company = b.company AND l.decision = 'linked'
              AND l.account_id IS NOT NULL
         WHERE NOT EXISTS (SELECT 1 FROM salesforce_outbox o
                           WHERE o.shop = $1 AND o.object = 'contact' AND o.record_key = b.key
                             AND o.status = 'done')"#,
        shop.as_str(),
        &keys,
        &companies,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.key, r.account)).collect())
}
