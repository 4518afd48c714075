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
    /// Salesforce refused to write the external id onto the matched record (Account or
    /// Contact `{0}`).
    #[error("linking {0}: {1}")]
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

/// Longest `WHERE` of one candidate query: the keys of many companies OR-ed together (the
/// query goes in a GET URL, which Salesforce caps at 16,384 bytes once encoded).
const QUERY_LEN: usize = 8_000;

/// Resolves the companies of one batch (`(gid, record about to be upserted)` each): stored
/// decisions first, then the Accounts sharing a key with any undecided company in as few SOQL
/// queries as the keys fit in (one for a typical batch), then a decision per company. `Err`:
/// the candidate query failed, nothing was decided.
pub async fn resolve_batch(
    pool: &PgPool,
    client: &Client,
    shop: &ShopDomain,
    companies: &[(&str, &Value)],
) -> Result<Vec<Result<Resolution, ResolveError>>, wholesail_salesforce::Error> {
    let mut resolved: Vec<Option<Result<Resolution, ResolveError>>> = Vec::new();
    let mut undecided: Vec<(usize, Company)> = Vec::new();
    for (i, (gid, record)) in companies.iter().enumerate() {
        match stored(pool, client, shop, gid, record).await {
            Ok(Some(resolution)) => resolved.push(Some(Ok(resolution))),
            Err(e) => resolved.push(Some(Err(e))),
            Ok(None) => {
                let name = record["Name"].as_str().unwrap_or_default();
                let company = match pool.acquire().await {
                    Ok(mut conn) => profile(&mut conn, shop, gid, name).await,
                    Err(e) => Err(e),
                };
                match company {
                    Ok(company) => {
                        undecided.push((i, company));
                        resolved.push(None);
                    }
                    Err(e) => resolved.push(Some(Err(e.into()))),
                }
            }
        }
    }
    let candidates = candidates(client, undecided.iter().map(|(_, c)| c)).await?;
    for (i, company) in undecided {
        let (gid, record) = companies[i];
        resolved[i] = Some(decide(pool, client, shop, gid, record, &company, &candidates).await);
    }
    Ok(resolved
        .into_iter()
        .map(|r| r.expect("every company is resolved"))
        .collect())
}

/// The decision stored for `gid`, if any (an operator's link is written onto its Account
/// first).
async fn stored(
    pool: &PgPool,
    client: &Client,
    shop: &ShopDomain,
    gid: &str,
    record: &Value,
) -> Result<Option<Resolution>, ResolveError> {
    let decided = sqlx::query!(
        "SELECT decision, candidates, account_id, account_written FROM salesforce_links
         WHERE shop = $1 AND company = $2",
        shop.as_str(),
        gid,
    )
    .fetch_optional(pool)
    .await?;
    Ok(match decided {
        Some(d) if d.decision == "review" => Some(Resolution::Review(
            d.candidates.as_array().map_or(0, Vec::len),
        )),
        // An operator's link: write the external id onto the chosen Account first.
        Some(d) if !d.account_written => {
            let account = d.account_id.unwrap_or_default();
            link(client, "Account", &account, record).await?;
            sqlx::query!(
                "UPDATE salesforce_links SET account_written = true
                 WHERE shop = $1 AND company = $2",
                shop.as_str(),
                gid,
            )
            .execute(pool)
            .await?;
            Some(Resolution::Linked(account))
        }
        Some(_) => Some(Resolution::Upsert),
        None => None,
    })
}

/// The unlinked Accounts sharing a key with any of `companies`: their key fragments OR-ed
/// into queries of at most [`QUERY_LEN`] characters. Candidates of one company are harmless
/// to another: matching weighs each candidate's evidence, and an unrelated one counts for
/// nothing.
async fn candidates<'a>(
    client: &Client,
    companies: impl Iterator<Item = &'a Company>,
) -> Result<Vec<Account>, wholesail_salesforce::Error> {
    let fields = key_fields();
    let mut queries = Vec::new();
    let mut current = String::new();
    for company in companies {
        for fragment in where_fragments(&CandidateKeys::of(company), &fields, 3_000) {
            if !current.is_empty() && current.len() + fragment.len() + 4 > QUERY_LEN {
                queries.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push_str(" OR ");
            }
            current.push_str(&fragment);
        }
    }
    if !current.is_empty() {
        queries.push(current);
    }
    let mut seen = std::collections::HashSet::new();
    let mut accounts = Vec::new();
    for condition in queries {
        let soql = format!(
            "SELECT Id, Name, Website, Wholesail_Domain__c, Tax_Id__c, BillingCountry \
             FROM Account WHERE Shopify_Company_Id__c = null AND ({condition})"
        );
        for row in client.query_all::<CandidateRow>(soql).await? {
            if seen.insert(row.id.clone()) {
                accounts.push(Account {
                    id: row.id,
                    name: row.name,
                    website: row.website,
                    email_domain: row.domain,
                    tax_id: row.tax_id,
                    billing_country: row.billing_country,
                });
            }
        }
    }
    Ok(accounts)
}

/// Matches `company` against `candidates`, acts on the decision and stores it.
async fn decide(
    pool: &PgPool,
    client: &Client,
    shop: &ShopDomain,
    gid: &str,
    record: &Value,
    company: &Company,
    candidates: &[Account],
) -> Result<Resolution, ResolveError> {
    let (decision, account, listed) = match match_company(company, candidates) {
        Decision::Create => ("created", None, Vec::new()),
        Decision::Link { account, .. } => {
            link(client, "Account", &account, record).await?;
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
    tracing::info!(%shop, company = gid, decision, candidates = listed.len(),
        "company matched against Salesforce");
    Ok(match account {
        Some(id) => Resolution::Linked(id),
        None if decision == "review" => Resolution::Review(listed.len()),
        None => Resolution::Upsert,
    })
}

/// Writes the Shopify-owned fields of `record` (its external id included) onto the existing
/// `sobject` `id`.
pub(super) async fn link(
    client: &Client,
    sobject: &str,
    id: &str,
    record: &Value,
) -> Result<(), ResolveError> {
    let request = Subrequest {
        method: "PATCH".into(),
        url: format!(
            "/services/data/v{}/sobjects/{sobject}/{id}",
            client.config().api_version
        ),
        reference_id: "link".into(),
        body: Some(record.clone()),
    };
    let answer = client.composite(true, &[request]).await?;
    match answer.first() {
        Some(r) if (200..300).contains(&r.http_status_code) => Ok(()),
        Some(r) => Err(ResolveError::Link(
            format!("{sobject} {id}"),
            r.body.to_string(),
        )),
        None => Err(ResolveError::Link(
            format!("{sobject} {id}"),
            "no answer".into(),
        )),
    }
}
