//! Before a company's first write, find out whether Salesforce already has it: never guess.
//!
//! The company's profile (name, its buyers' email domains) is matched by `wholesail-matching`
//! against the Accounts that share a key with it (normalised name prefix, business domain, tax
//! id: the `Wholesail_Name_Key__c`, `Wholesail_Domain__c` and `Tax_Id__c` fields) and are not
//! linked to another company yet. The decision is stored in `salesforce_links`:
//! - **create**: nothing related, the upsert creates the Account;
//! - **link**: a unique strong match, the external id is written onto that Account;
//! - **review**: several or weak candidates; nothing is written until an operator decides.

use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use wholesail_matching::soql::{where_fragments, CandidateKeys, FieldName, KeyFields};
use wholesail_matching::{match_company, Account, Company, Decision};
use wholesail_salesforce::composite::Subrequest;
use wholesail_salesforce::Client;
use wholesail_webhook::ShopDomain;

/// What to do with a company's Account now.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Upsert by external id (new, or created or linked before).
    Upsert,
    /// Linked just now to this existing Account.
    Linked(String),
    /// Waiting for an operator, with this many candidates.
    Review(usize),
}

/// Why a resolution failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Reading or writing origin's tables.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Asking Salesforce.
    #[error(transparent)]
    Salesforce(#[from] wholesail_salesforce::Error),
    /// Salesforce refused to write the external id onto the matched Account.
    #[error("linking Account {0}: {1}")]
    Link(String, String),
}

/// An Account as the candidate query returns it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CandidateRow {
    id: String,
    name: String,
    website: Option<String>,
    #[serde(rename = "Wholesail_Domain__c")]
    domain: Option<String>,
    #[serde(rename = "Tax_Id__c")]
    tax_id: Option<String>,
    billing_country: Option<String>,
}

fn key_fields() -> KeyFields {
    let field = |f: &str| FieldName::parse(f).expect("a valid API name");
    KeyFields {
        name_key: field("Wholesail_Name_Key__c"),
        domain: field("Wholesail_Domain__c"),
        tax_id: field("Tax_Id__c"),
    }
}

/// The company as matching sees it: its name and its buyers' email addresses.
pub async fn profile(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    gid: &str,
    name: &str,
) -> Result<Company, sqlx::Error> {
    let number = wholesail_webhook::Gid::number_of(gid, "Company").ok();
    let contact_emails = sqlx::query_scalar!(
        r#"SELECT DISTINCT o.email AS "email!" FROM orders o
         WHERE o.shop = $1 AND o.company_id = $2 AND o.email IS NOT NULL
         LIMIT 20"#,
        shop.as_str(),
        number,
    )
    .fetch_all(conn)
    .await?;
    Ok(Company {
        name: name.to_owned(),
        contact_emails,
        ..Company::default()
    })
}

/// Resolves the company `gid` of `shop` (its record `record` about to be upserted).
pub async fn resolve(
    pool: &PgPool,
    client: &Client,
    shop: &ShopDomain,
    gid: &str,
    record: &Value,
) -> Result<Resolution, ResolveError> {
    let decided = sqlx::query!(
        "SELECT decision, candidates, account_id, account_written FROM salesforce_links
         WHERE shop = $1 AND company = $2",
        shop.as_str(),
        gid,
    )
    .fetch_optional(pool)
    .await?;
    match decided {
        Some(d) if d.decision == "review" => {
            return Ok(Resolution::Review(
                d.candidates.as_array().map_or(0, Vec::len),
            ))
        }
        // An operator's link: write the external id onto the chosen Account first.
        Some(d) if !d.account_written => {
            let account = d.account_id.unwrap_or_default();
            link(client, &account, record).await?;
            sqlx::query!(
                "UPDATE salesforce_links SET account_written = true
                 WHERE shop = $1 AND company = $2",
                shop.as_str(),
                gid,
            )
            .execute(pool)
            .await?;
            return Ok(Resolution::Linked(account));
        }
        Some(_) => return Ok(Resolution::Upsert),
        None => {}
    }
    let name = record["Name"].as_str().unwrap_or_default();
    let company = profile(&mut *pool.acquire().await?, shop, gid, name).await?;
    let keys = CandidateKeys::of(&company);
    let mut candidates = Vec::new();
    for fragment in where_fragments(&keys, &key_fields(), 3_000) {
        let soql = format!(
            "SELECT Id, Name, Website, Wholesail_Domain__c, Tax_Id__c, BillingCountry \
             FROM Account WHERE Shopify_Company_Id__c = null AND {fragment}"
        );
        for row in client.query_all::<CandidateRow>(soql).await? {
            candidates.push(Account {
                id: row.id,
                name: row.name,
                website: row.website,
                email_domain: row.domain,
                tax_id: row.tax_id,
                billing_country: row.billing_country,
            });
        }
    }
    let (decision, account, listed) = match match_company(&company, &candidates) {
        Decision::Create => ("created", None, Vec::new()),
        Decision::Link { account, .. } => {
            link(client, &account, record).await?;
            ("linked", Some(account), Vec::new())
        }
        Decision::Review(listed) => (
            "review",
            None,
            listed
                .iter()
                .map(|c| {
                    json!({"account": c.account, "rule": c.rule.map(|r| format!("{r:?}")),
                                "reasons": format!("{:?}", c.reasons)})
                })
                .collect(),
        ),
    };
    sqlx::query!(
        "INSERT INTO salesforce_links (shop, company, decision, account_id, candidates)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (shop, company) DO NOTHING",
        shop.as_str(),
        gid,
        decision,
        account,
        Value::Array(listed.clone()),
    )
    .execute(pool)
    .await?;
    metrics::counter!("wholesail_salesforce_matches_total", "decision" => decision).increment(1);
    tracing::info!(%shop, company = gid, decision, candidates = candidates.len(),
        "company matched against Salesforce");
    Ok(match account {
        Some(id) => Resolution::Linked(id),
        None if decision == "review" => Resolution::Review(listed.len()),
        None => Resolution::Upsert,
    })
}

/// Writes the Shopify-owned fields of `record` (its external id included) onto Account `id`.
async fn link(client: &Client, id: &str, record: &Value) -> Result<(), ResolveError> {
    let request = Subrequest {
        method: "PATCH".into(),
        url: format!(
            "/services/data/v{}/sobjects/Account/{id}",
            client.config().api_version
        ),
        reference_id: "link".into(),
        body: Some(record.clone()),
    };
    let answer = client.composite(true, &[request]).await?;
    match answer.first() {
        Some(r) if (200..300).contains(&r.http_status_code) => Ok(()),
        Some(r) => Err(ResolveError::Link(id.to_owned(), r.body.to_string())),
        None => Err(ResolveError::Link(id.to_owned(), "no answer".into())),
    }
}
