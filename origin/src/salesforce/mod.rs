//! Salesforce sync (#14). Toward Salesforce: the transactional outbox (`outbox`), the mapping
//! and field ownership declared once (`mapping`), company and buyer matching (`accounts`,
//! `contacts`), and the loop that sends the outbox through `wholesail-salesforce` (`runner`;
//! backlogs through Bulk API 2.0, `bulk`). From Salesforce: the Change
//! Data Capture subscription (`inbound`), which lands Salesforce-owned fields and restores
//! drifted Shopify-owned ones (`ownership`) and turns approved Quotes into draft orders
//! (`quotes`). `cli` and `api` are the operator's commands and routes. A shop's changes are enqueued only once it is connected (`[[salesforce.orgs]]`
//! in the configuration); its org is subscribed to when the org names a `pubsub_url`.

use std::collections::HashMap;

use secrecy::SecretString;
use serde::Deserialize;
use wholesail_webhook::ShopDomain;

pub mod accounts;
pub mod api;
pub mod bulk;
pub mod cli;
pub mod contacts;
pub mod inbound;
pub mod mapping;
pub mod outbox;
pub mod ownership;
pub mod quotes;
pub mod runner;

/// `[salesforce]`: the orgs and the loop settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SalesforceConfig {
    /// One org per connected shop.
    pub orgs: Vec<OrgConfig>,
    /// The sync loop.
    pub sync: runner::Settings,
    /// The change subscription and quote to cash.
    pub inbound: inbound::Settings,
}

/// `[[salesforce.orgs]]`: how one shop reaches its org (OAuth client credentials).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    /// The Shopify shop whose records go to this org.
    pub shop: ShopDomain,
    /// The org's My Domain URL (or the simulator's).
    pub login_url: String,
    /// The connected app's consumer key.
    pub client_id: String,
    /// The connected app's consumer secret.
    pub client_secret: SecretString,
    /// The Pub/Sub API endpoint (`https://api.pubsub.salesforce.com:7443`, or the
    /// simulator's): with it, changes made in Salesforce flow back.
    #[serde(default)]
    pub pubsub_url: Option<String>,
}

impl SalesforceConfig {
    /// A client per connected shop.
    pub fn clients(
        &self,
    ) -> Result<HashMap<ShopDomain, wholesail_salesforce::Client>, wholesail_salesforce::Error>
    {
        self.orgs
            .iter()
            .map(|o| {
                let config = wholesail_salesforce::Config::new(
                    o.login_url.clone(),
                    o.client_id.clone(),
                    o.client_secret.clone(),
                );
                Ok((o.shop.clone(), wholesail_salesforce::Client::new(config)?))
            })
            .collect()
    }
}
