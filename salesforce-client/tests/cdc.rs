//! Change Data Capture against the simulator's Pub/Sub API: subscribe with flow control,
//! decode the Avro events, resume from a stored replay id, and be refused an expired one.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{accounts, client, simulator};
use serde_json::json;
use wholesail_salesforce::cdc::{ChangeEvent, ChangeType, Replay, Subscriber, Subscription};
use wholesail_salesforce::Error;

const TOPIC: &str = "/data/AccountChangeEvent";

async fn next(sub: &mut Subscription) -> ChangeEvent {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("an event within 5 s")
        .unwrap()
        .expect("the stream stays open")
}

#[tokio::test]
async fn events_are_decoded_in_batches_and_a_stored_replay_id_resumes_after_it() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    let subscriber = Subscriber::connect(client.clone(), sim.pubsub_url())
        .await
        .unwrap();
    let topic = subscriber.topic(TOPIC).await.unwrap();
    assert!(topic.can_subscribe);
    let schema = subscriber.schema(&topic.schema_id).await.unwrap();
    assert!(Arc::ptr_eq(
        &schema,
        &subscriber.schema(&topic.schema_id).await.unwrap()
    ));

    let saved = client
        .upsert("Account", "Shopify_Company_Id__c", &accounts(0..5))
        .await
        .unwrap();
    // Two at a time: the subscription must ask for more twice to see all five.
    let mut sub = subscriber
        .subscribe(TOPIC, Replay::Earliest, 2)
        .await
        .unwrap();
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(next(&mut sub).await);
    }
    for (event, outcome) in created.iter().zip(&saved) {
        assert_eq!(event.entity, "Account");
        assert_eq!(event.change_type, ChangeType::Create);
        assert_eq!(event.record_ids, [outcome.id().unwrap()]);
    }
    assert_eq!(created[3].fields["Name"], "Company 3");
    assert_eq!(created[3].fields["Shopify_Company_Id__c"], "company-3");
    assert!(created[3].commit_timestamp.year() >= 2024);

    let id = saved[1].id().unwrap();
    sim.user_update("Account", id, json!({"Name": "Renamed", "Website": null}))
        .unwrap();
    let update = next(&mut sub).await;
    assert_eq!(update.change_type, ChangeType::Update);
    assert_eq!(update.record_ids, [id]);
    assert!(
        update.changed_fields.iter().any(|f| f == "Name"),
        "{update:?}"
    );
    assert_eq!(update.fields["Name"], "Renamed");
    assert_eq!(update.change_origin, "");
    drop(sub);

    // Resuming from the third event's replay id delivers the fourth onwards.
    let mut resumed = subscriber
        .subscribe(TOPIC, Replay::Custom(created[2].replay_id.clone()), 10)
        .await
        .unwrap();
    assert_eq!(next(&mut resumed).await, created[3]);
    assert_eq!(next(&mut resumed).await, created[4]);
    assert_eq!(next(&mut resumed).await, update);
}

#[tokio::test]
async fn a_replay_id_past_retention_is_a_typed_error() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    client
        .upsert("Account", "Shopify_Company_Id__c", &accounts(0..1))
        .await
        .unwrap();
    let subscriber = Subscriber::connect(client.clone(), sim.pubsub_url())
        .await
        .unwrap();
    let mut sub = subscriber
        .subscribe(TOPIC, Replay::Earliest, 1)
        .await
        .unwrap();
    let stored = next(&mut sub).await.replay_id;
    drop(sub);

    // 73 hours later the event is gone (and the session has expired: the client logs in again).
    sim.advance_clock(Duration::from_secs(73 * 3600));
    let err = match subscriber.subscribe(TOPIC, Replay::Custom(stored), 1).await {
        Err(e) => e,
        Ok(mut sub) => sub.next().await.unwrap_err(),
    };
    assert!(matches!(err, Error::ReplayIdInvalid(_)), "{err:?}");
}
