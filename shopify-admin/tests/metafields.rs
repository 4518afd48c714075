//! `metafieldsSet` through the client: the 25-per-call limit, value sizes, compare-and-set.

mod common;

use common::{client, simulator};
use shopify_simulator::DEFAULT_SHOP;
use wholesail_shopify_admin::metafields::{CompareDigest, MetafieldsSetInput};
use wholesail_shopify_admin::AdminError;

fn input(owner: u64, value: &str, digest: CompareDigest) -> MetafieldsSetInput {
    MetafieldsSetInput {
        owner_id: format!("gid://shopify/CompanyLocation/{owner}"),
        namespace: "$app:rules".into(),
        key: "buyer".into(),
        value: value.into(),
        kind: "json".into(),
        compare_digest: digest,
    }
}

fn codes(e: AdminError) -> Vec<String> {
    match e {
        AdminError::UserErrors(v) => v.into_iter().filter_map(|u| u.code).collect(),
        other => panic!("expected user errors, got {other:?}"),
    }
}

#[tokio::test]
async fn twenty_five_metafields_are_set_atomically_and_twenty_six_are_refused() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    let ok: Vec<_> = (0..25)
        .map(|i| input(i, "{}", CompareDigest::Unchecked))
        .collect();
    assert_eq!(client.metafields_set(&ok).await.unwrap().len(), 25);
    let too_many: Vec<_> = (100..126)
        .map(|i| input(i, "{}", CompareDigest::Unchecked))
        .collect();
    let err = client.metafields_set(&too_many).await.unwrap_err();
    assert_eq!(codes(err), vec!["LESS_THAN_OR_EQUAL_TO"]);
    assert_eq!(sim.metafields(DEFAULT_SHOP).len(), 25);
}

#[tokio::test]
async fn a_json_value_over_128_kib_is_refused_and_nothing_is_written() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    let big = format!("\"{}\"", "x".repeat(128 * 1024));
    let err = client
        .metafields_set(&[
            input(1, "{}", CompareDigest::Unchecked),
            input(2, &big, CompareDigest::Unchecked),
        ])
        .await
        .unwrap_err();
    assert_eq!(codes(err), vec!["TOO_LONG"]);
    assert!(sim.metafields(DEFAULT_SHOP).is_empty());
}

#[tokio::test]
async fn compare_digest_detects_a_concurrent_write() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    let created = client
        .metafields_set(&[input(7, r#"{"v":1}"#, CompareDigest::MustNotExist)])
        .await
        .unwrap();
    let digest = created[0].compare_digest.clone();
    assert_eq!(
        created[0].namespace,
        format!("app--{}--rules", sim.config().app_id)
    );
    // Someone else writes in between.
    client
        .metafields_set(&[input(7, r#"{"v":"theirs"}"#, CompareDigest::Unchecked)])
        .await
        .unwrap();
    let read = client
        .metafield("gid://shopify/CompanyLocation/7", "$app:rules", "buyer")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.value, r#"{"v":"theirs"}"#);
    assert_ne!(read.compare_digest, digest);
    assert!(client
        .metafield("gid://shopify/CompanyLocation/8", "$app:rules", "buyer")
        .await
        .unwrap()
        .is_none());
    let err = client
        .metafields_set(&[input(7, r#"{"v":2}"#, CompareDigest::Matches(digest))])
        .await
        .unwrap_err();
    assert_eq!(codes(err), vec!["STALE_OBJECT"]);
    let stored = sim
        .metafield(
            DEFAULT_SHOP,
            "gid://shopify/CompanyLocation/7",
            "$app:rules",
            "buyer",
        )
        .unwrap();
    assert_eq!(stored.value, r#"{"v":"theirs"}"#);
    // With the current digest the write goes through.
    let ok = client
        .metafields_set(&[input(
            7,
            r#"{"v":2}"#,
            CompareDigest::Matches(stored.compare_digest),
        )])
        .await
        .unwrap();
    assert_eq!(ok[0].value, r#"{"v":2}"#);
}
