//! `metafieldsSet`: up to 25 metafields per call, atomically, with optional compare-and-set.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::json;

use crate::{check_user_errors, AdminClient, AdminError, Request, Retry, UserError};

/// Most metafields one call may set.
pub const MAX_PER_CALL: usize = 25;

/// The write guarantee of one metafield.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CompareDigest {
    /// Write whatever is stored (no `compareDigest` sent).
    #[default]
    Unchecked,
    /// Write only if the metafield does not exist yet (`compareDigest: null`).
    MustNotExist,
    /// Write only if the stored value still has this digest.
    Matches(String),
}

impl CompareDigest {
    fn is_unchecked(&self) -> bool {
        matches!(self, CompareDigest::Unchecked)
    }
}

impl Serialize for CompareDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CompareDigest::Matches(d) => s.serialize_str(d),
            _ => s.serialize_none(),
        }
    }
}

/// `MetafieldsSetInput`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetafieldsSetInput {
    /// The owner's gid.
    pub owner_id: String,
    /// Namespace (`$app:…` for app-owned).
    pub namespace: String,
    /// Key.
    pub key: String,
    /// Value, serialised as Shopify expects for the type.
    pub value: String,
    /// Type, e.g. `json`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Compare-and-set guarantee.
    #[serde(skip_serializing_if = "CompareDigest::is_unchecked")]
    pub compare_digest: CompareDigest,
}

/// A metafield as written.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metafield {
    /// gid.
    pub id: String,
    /// Namespace as stored (`$app` resolved).
    pub namespace: String,
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
    /// Digest of the value: pass it as [`CompareDigest::Matches`] for the next write.
    pub compare_digest: String,
}

impl AdminClient {
    /// Sets up to [`MAX_PER_CALL`] metafields atomically; any rejected input rejects the call
    /// with [`AdminError::UserErrors`] (`STALE_OBJECT` when a `compareDigest` no longer
    /// matches). Setting values is idempotent, so failures are retried.
    pub async fn metafields_set(
        &self,
        metafields: &[MetafieldsSetInput],
    ) -> Result<Vec<Metafield>, AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            metafields: Option<Vec<Metafield>>,
            user_errors: Vec<UserError>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            metafields_set: Payload,
        }
        let r = self
            .execute::<Data>(&Request {
                name: "MetafieldsSet",
                query: "mutation MetafieldsSet($metafields: [MetafieldsSetInput!]!) { metafieldsSet(metafields: $metafields) { metafields { id namespace key value compareDigest } userErrors { field message code elementIndex } } }",
                variables: json!({"metafields": metafields}),
                estimated_cost: 10,
                retry: Retry::Always,
            })
            .await?;
        check_user_errors(r.data.metafields_set.user_errors)?;
        Ok(r.data.metafields_set.metafields.unwrap_or_default())
    }
}

impl AdminClient {
    /// The metafield `namespace`/`key` of `owner_id` (with its `compareDigest`), if set.
    pub async fn metafield(
        &self,
        owner_id: &str,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Metafield>, AdminError> {
        #[derive(Deserialize)]
        struct Node {
            metafield: Option<Metafield>,
        }
        #[derive(Deserialize)]
        struct Data {
            node: Option<Node>,
        }
        let r = self
            .execute::<Data>(&Request {
                name: "Metafield",
                query: "query Metafield($owner: ID!, $namespace: String!, $key: String!) { node(id: $owner) { ... on HasMetafields { metafield(namespace: $namespace, key: $key) { id namespace key value compareDigest } } } }",
                variables: json!({"owner": owner_id, "namespace": namespace, "key": key}),
                estimated_cost: 2,
                retry: Retry::Always,
            })
            .await?;
        Ok(r.data.node.and_then(|n| n.metafield))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_digest_serialises_as_absent_null_or_string() {
        let mut m = MetafieldsSetInput {
            owner_id: "gid://shopify/Product/1".into(),
            namespace: "$app:rules".into(),
            key: "k".into(),
            value: "1".into(),
            kind: "number_integer".into(),
            compare_digest: CompareDigest::Unchecked,
        };
        assert!(serde_json::to_value(&m)
            .unwrap()
            .get("compareDigest")
            .is_none());
        m.compare_digest = CompareDigest::MustNotExist;
        assert_eq!(
            serde_json::to_value(&m).unwrap()["compareDigest"],
            serde_json::Value::Null
        );
        m.compare_digest = CompareDigest::Matches("abc".into());
        assert_eq!(serde_json::to_value(&m).unwrap()["compareDigest"], "abc");
    }
}
