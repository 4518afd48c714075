//! Pushing each buyer's rules to its company location's metafields, sending only what changed.
//!
//! For each buyer in scope the rules are computed ([`super::compute`]) and encoded into the
//! WS1 pages (`wholesail_rules::payload::encode`). A page is sent only when the SHA-256 of its
//! value differs from the digest recorded in `rules_pushed` at the last push; pages go out with
//! `metafieldsSet`, at most 25 per call, a buyer's pages always in one call (the call is atomic,
//! so checkout never reads pages of two pushes), paced by the shop's [`AdminClient`]. Each write
//! carries `compareDigest` (Shopify's digest of the value last pushed, or "must not exist"): if
//! someone else wrote the metafield meanwhile, the call is refused with `STALE_OBJECT`, the
//! current digests are read and the call is sent once more — origin's tables are the truth.
//! The digests are recorded right after each successful call. Pushes of one shop are
//! serialised by an advisory lock, so the background loop, the CLI and the admin API never
//! send the same change twice.
//!
//! A buyer whose rules do not fit what the Function can read fails loudly: the error names the
//! buyer, is logged and recorded in `rules_push_errors`, and the other buyers are pushed. So
//! does a buyer whose metafields Shopify refuses (e.g. a company location deleted in Shopify):
//! it is taken out of its call, which is sent again without it.
//! Pages beyond a buyer's current page count are left as they are: readers ignore pages past
//! the count page 0 announces.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use wholesail_rules::payload::{self, METAFIELD_TYPE, NAMESPACE, PAGE_KEYS};
use wholesail_shopify_admin::metafields::{
    CompareDigest, Metafield, MetafieldsSetInput, MAX_PER_CALL,
};
use wholesail_shopify_admin::{AdminClient, AdminError};
use wholesail_webhook::ShopDomain;

use super::compute::{ComputeError, Scope, ShopRules};

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PushReport {
    /// Buyers computed.
    pub buyers: usize,
    /// Buyers with at least one changed page.
    pub changed_buyers: usize,
    /// Metafields written.
    pub metafields: usize,
    /// `metafieldsSet` calls made (retries after `STALE_OBJECT` included).
    pub calls: usize,
    /// Buyers that could not be pushed, with why (rules too large for the Function).
    pub failed: Vec<(String, String)>,
}

/// Why a push stopped.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The rules could not be computed.
    #[error(transparent)]
    Compute(#[from] ComputeError),
    /// Shopify refused or could not be reached (pages pushed before stay recorded).
    #[error("shopify: {0}")]
    Admin(#[from] AdminError),
}

/// The hex SHA-256 of a metafield value, as recorded in `rules_pushed.digest`.
pub fn value_digest(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One metafield to write.
struct Page {
    owner: String,
    key: &'static str,
    value: String,
    digest: String,
}

/// Recomputes the buyers of `shop` in `locations` (`None`: all) and pushes what changed.
pub async fn push(
    pool: &PgPool,
    client: &AdminClient,
    shop: &ShopDomain,
    locations: Option<&[String]>,
) -> Result<PushReport, PushError> {
    // One push per shop at a time (the background loop, the CLI and the admin API may race):
    // a transaction-scoped advisory lock, held until this function returns.
    let mut lock = pool.begin().await?;
    sqlx::query!(
        "SELECT 1 AS locked
         FROM pg_advisory_xact_lock(hashtext('wholesail_rules_push'), hashtext($1))",
        shop.as_str()
    )
    .fetch_one(&mut *lock)
    .await?;
    let rules = ShopRules::load(
        pool,
        shop,
        Scope {
            locations,
            variants: None,
        },
    )
    .await?;
    let last = last_pushed(pool, shop, locations).await?;

    let mut report = PushReport::default();
    let mut fitting: Vec<String> = Vec::new();
    // Each buyer's changed pages, kept together.
    let mut changed: Vec<Vec<Page>> = Vec::new();
    for buyer in rules.buyers() {
        report.buyers += 1;
        let encoded = rules
            .buyer_rules(buyer)
            .map_err(|e| e.to_string())
            .and_then(|r| {
                let empty = r.variants().is_empty() && r.order_minimum().is_none();
                payload::encode(buyer, &r)
                    .map(|p| (p, empty))
                    .map_err(|e| e.to_string())
            });
        let (pages, empty) = match encoded {
            Ok(p) => p,
            Err(error) => {
                tracing::error!(%shop, buyer, %error, "buyer's rules cannot be pushed");
                report.failed.push((buyer.to_owned(), error));
                continue;
            }
        };
        fitting.push(buyer.to_owned());
        let never_pushed = !last.contains_key(&(buyer.to_owned(), PAGE_KEYS[0].to_owned()));
        if empty && never_pushed {
            // No rules and nothing to overwrite: the Function treats a missing payload as
            // no rules (policy `missing`).
            continue;
        }
        let pages: Vec<Page> = pages
            .into_iter()
            .zip(PAGE_KEYS)
            .map(|(value, key)| Page {
                owner: buyer.to_owned(),
                key,
                digest: value_digest(&value),
                value,
            })
            .filter(|p| {
                last.get(&(p.owner.clone(), p.key.to_owned()))
                    .is_none_or(|(d, _)| *d != p.digest)
            })
            .collect();
        if !pages.is_empty() {
            changed.push(pages);
        }
    }
    report.changed_buyers = changed.len();

    for mut batch in batches(changed) {
        let written = send(client, shop, &mut batch, &last, &mut report).await?;
        record_pushed(pool, shop, &batch, &written).await?;
        report.metafields += batch.len();
    }
    fitting.retain(|b| !report.failed.iter().any(|(f, _)| f == b));
    record_failures(pool, shop, &fitting, &report.failed).await?;
    lock.rollback().await?;
    Ok(report)
}

/// What was last pushed for the buyers of `shop` in `locations` (`None`: all):
/// (owner, key) → (digest, compare digest).
async fn last_pushed(
    pool: &PgPool,
    shop: &ShopDomain,
    locations: Option<&[String]>,
) -> Result<HashMap<(String, String), (String, Option<String>)>, sqlx::Error> {
    let pushed = sqlx::query!(
        "SELECT owner_id, key, digest, compare_digest FROM rules_pushed
         WHERE shop = $1 AND ($2::text[] IS NULL OR owner_id = ANY($2))",
        shop.as_str(),
        locations
    )
    .fetch_all(pool)
    .await?;
    Ok(pushed
        .into_iter()
        .map(|r| ((r.owner_id, r.key), (r.digest, r.compare_digest)))
        .collect())
}

/// Records the digests of `batch`, which Shopify answered with `written`.
async fn record_pushed(
    pool: &PgPool,
    shop: &ShopDomain,
    batch: &[Page],
    written: &[Metafield],
) -> Result<(), sqlx::Error> {
    // Shopify answers in input order; a key that does not line up is recorded without a
    // digest (the next write then refreshes it through the STALE_OBJECT path).
    let compare: Vec<Option<String>> = batch
        .iter()
        .enumerate()
        .map(|(i, p)| {
            written
                .get(i)
                .filter(|m| m.key == p.key)
                .map(|m| m.compare_digest.clone())
        })
        .collect();
    let owners: Vec<String> = batch.iter().map(|p| p.owner.clone()).collect();
    let keys: Vec<String> = batch.iter().map(|p| p.key.to_owned()).collect();
    let digests: Vec<String> = batch.iter().map(|p| p.digest.clone()).collect();
    sqlx::query!(
        "INSERT INTO rules_pushed (shop, owner_id, key, digest, compare_digest)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])
         ON CONFLICT (shop, owner_id, key) DO UPDATE
         SET digest = EXCLUDED.digest, compare_digest = EXCLUDED.compare_digest,
             pushed_at = now()",
        shop.as_str(),
        &owners,
        &keys,
        &digests,
        // `as _`: the macros type arrays without NULL elements.
        &compare as _
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Sends one batch. On `STALE_OBJECT` the current digests are read and the call repeated once;
/// when Shopify refuses some inputs (e.g. a company location deleted in Shopify), their buyers
/// are taken out of the batch and reported as failed, and the rest is sent again.
async fn send(
    client: &AdminClient,
    shop: &ShopDomain,
    batch: &mut Vec<Page>,
    last: &HashMap<(String, String), (String, Option<String>)>,
    report: &mut PushReport,
) -> Result<Vec<Metafield>, PushError> {
    let mut refreshed: HashMap<(String, String), CompareDigest> = HashMap::new();
    let mut stale_retried = false;
    loop {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<MetafieldsSetInput> =
            batch
                .iter()
                .map(|p| {
                    let id = (p.owner.clone(), p.key.to_owned());
                    let compare_digest = refreshed.get(&id).cloned().unwrap_or_else(|| match last
                        .get(&id)
                    {
                        Some((_, Some(c))) => CompareDigest::Matches(c.clone()),
                        _ => CompareDigest::MustNotExist,
                    });
                    MetafieldsSetInput {
                        owner_id: p.owner.clone(),
                        namespace: NAMESPACE.to_owned(),
                        key: p.key.to_owned(),
                        value: p.value.clone(),
                        kind: METAFIELD_TYPE.to_owned(),
                        compare_digest,
                    }
                })
                .collect();
        report.calls += 1;
        let errors = match client.metafields_set(&inputs).await {
            Ok(written) => return Ok(written),
            Err(AdminError::UserErrors(errors)) => errors,
            Err(e) => return Err(e.into()),
        };
        let stale = errors
            .iter()
            .any(|e| e.code.as_deref() == Some("STALE_OBJECT"));
        if stale && !stale_retried {
            tracing::warn!(%shop, "metafields changed outside origin; overwriting");
            stale_retried = true;
            for input in &inputs {
                let current = client
                    .metafield(&input.owner_id, NAMESPACE, &input.key)
                    .await?
                    .map_or(CompareDigest::MustNotExist, |m| {
                        CompareDigest::Matches(m.compare_digest)
                    });
                refreshed.insert((input.owner_id.clone(), input.key.clone()), current);
            }
            continue;
        }
        let refused: Vec<(String, String)> = errors
            .iter()
            .filter(|e| e.code.as_deref() != Some("STALE_OBJECT"))
            .filter_map(|e| {
                let page = batch.get(usize::try_from(e.element_index?).ok()?)?;
                Some((
                    page.owner.clone(),
                    format!("shopify refused: {}", e.message),
                ))
            })
            .collect();
        if refused.is_empty() {
            return Err(AdminError::UserErrors(errors).into());
        }
        for (owner, error) in refused {
            if !report.failed.iter().any(|(f, _)| *f == owner) {
                tracing::error!(%shop, buyer = %owner, %error, "buyer's rules cannot be pushed");
                batch.retain(|p| p.owner != owner);
                report.failed.push((owner, error));
            }
        }
    }
}

/// Packs buyers' pages into calls of at most [`MAX_PER_CALL`], never splitting a buyer.
fn batches(buyers: Vec<Vec<Page>>) -> Vec<Vec<Page>> {
    let mut out: Vec<Vec<Page>> = Vec::new();
    for pages in buyers {
        match out.last_mut() {
            Some(b) if b.len() + pages.len() <= MAX_PER_CALL => b.extend(pages),
            _ => out.push(pages),
        }
    }
    out
}

/// Records the buyers that failed and clears the marks of those that fit now.
async fn record_failures(
    pool: &PgPool,
    shop: &ShopDomain,
    fitting: &[String],
    failed: &[(String, String)],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "DELETE FROM rules_push_errors WHERE shop = $1 AND company_location = ANY($2)",
        shop.as_str(),
        fitting
    )
    .execute(&mut *tx)
    .await?;
    let (locs, errors): (Vec<String>, Vec<String>) = failed.iter().cloned().unzip();
    sqlx::query!(
        "INSERT INTO rules_push_errors (shop, company_location, error)
         SELECT $1, * FROM unnest($2::text[], $3::text[])
         ON CONFLICT (shop, company_location) DO UPDATE
         SET error = EXCLUDED.error, recorded_at = now()",
        shop.as_str(),
        &locs,
        &errors
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
