//! Change Data Capture over the Pub/Sub API: a real tonic client subscribes, decodes the
//! Avro payloads with the schema from `GetSchema`, replays from a stored replay id, and is
//! refused an expired one.

mod common;

use std::time::Duration;

use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use common::{account, start, Org};
use salesforce_simulator::cdc::proto::pub_sub_client::PubSubClient;
use salesforce_simulator::cdc::proto::{
    FetchRequest, FetchResponse, ReplayPreset, SchemaRequest, TopicRequest,
};
use salesforce_simulator::Config;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

const TOPIC: &str = "/data/AccountChangeEvent";

fn authed<T>(org: &Org, message: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    let md = req.metadata_mut();
    md.insert("accesstoken", token.parse().unwrap());
    md.insert("instanceurl", org.sim.base_url().parse().unwrap());
    md.insert("tenantid", org.sim.config().org_id.parse().unwrap());
    req
}

async fn client(org: &Org) -> PubSubClient<Channel> {
    PubSubClient::connect(org.sim.pubsub_url()).await.unwrap()
}

struct Subscription {
    requests: mpsc::Sender<FetchRequest>,
    responses: Streaming<FetchResponse>,
}

async fn subscribe(
    org: &Org,
    preset: ReplayPreset,
    replay_id: Vec<u8>,
    n: i32,
) -> Result<Subscription, tonic::Status> {
    let (tx, rx) = mpsc::channel(4);
    tx.send(FetchRequest {
        topic_name: TOPIC.into(),
        replay_preset: preset as i32,
        replay_id,
        num_requested: n,
        auth_refresh: String::new(),
    })
    .await
    .unwrap();
    let responses = client(org)
        .await
        .subscribe(authed(org, ReceiverStream::new(rx), &org.token))
        .await?
        .into_inner();
    Ok(Subscription {
        requests: tx,
        responses,
    })
}

impl Subscription {
    /// The next response that carries events (keepalives skipped).
    async fn events(&mut self) -> Result<FetchResponse, tonic::Status> {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(5), self.responses.message())
                .await
                .expect("a response within 5 s")?
                .expect("the stream stays open");
            if !next.events.is_empty() {
                return Ok(next);
            }
        }
    }
}

fn field<'a>(record: &'a Avro, name: &str) -> &'a Avro {
    let Avro::Record(fields) = record else {
        panic!("not a record: {record:?}")
    };
    &fields
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .1
}

fn strings(v: &Avro) -> Vec<String> {
    let Avro::Array(items) = v else {
        panic!("not an array")
    };
    items
        .iter()
        .map(|i| match i {
            Avro::String(s) => s.clone(),
            other => panic!("not a string: {other:?}"),
        })
        .collect()
}

async fn schema(org: &Org) -> Schema {
    let mut c = client(org).await;
    let topic = c
        .get_topic(authed(
            org,
            TopicRequest {
                topic_name: TOPIC.into(),
            },
            &org.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(topic.can_subscribe);
    let info = c
        .get_schema(authed(
            org,
            SchemaRequest {
                schema_id: topic.schema_id.clone(),
            },
            &org.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.schema_id, topic.schema_id);
    Schema::parse_str(&info.schema_json).unwrap()
}

fn decode(schema: &Schema, response: &FetchResponse, i: usize) -> Avro {
    let payload = &response.events[i].event.as_ref().unwrap().payload;
    apache_avro::from_avro_datum(schema, &mut payload.as_slice(), None).unwrap()
}

#[tokio::test]
async fn subscriber_receives_api_and_user_changes_with_flow_control() {
    let org = start(Config::default()).await;
    let schema = schema(&org).await;
    let mut sub = subscribe(&org, ReplayPreset::Latest, Vec::new(), 1)
        .await
        .unwrap();

    let (_, saved) = org
        .patch(
            "/composite/sobjects/Account/Shopify_Company_Id__c",
            json!({"records": [account("e1", "Acme")]}),
        )
        .await;
    let id = saved[0]["id"].as_str().unwrap().to_owned();
    let new_owner = salesforce_simulator::ids::with_checksum("005Wh0000000XYZ");
    org.sim
        .user_update("Account", &id, json!({"OwnerId": new_owner.clone()}))
        .unwrap();

    let first = sub.events().await.unwrap();
    assert_eq!(first.events.len(), 1);
    assert_eq!(
        first.pending_num_requested, 0,
        "one event requested, one delivered"
    );
    let created = decode(&schema, &first, 0);
    let header = field(&created, "ChangeEventHeader");
    assert_eq!(field(header, "entityName"), &Avro::String("Account".into()));
    assert_eq!(field(header, "changeType"), &Avro::Enum(0, "CREATE".into()));
    assert_eq!(strings(field(header, "recordIds")), vec![id.clone()]);
    assert_eq!(
        field(&created, "Name"),
        &Avro::Union(1, Box::new(Avro::String("Acme".into())))
    );

    sub.requests
        .send(FetchRequest {
            num_requested: 5,
            ..FetchRequest::default()
        })
        .await
        .unwrap();
    let second = sub.events().await.unwrap();
    let updated = decode(&schema, &second, 0);
    let header = field(&updated, "ChangeEventHeader");
    assert_eq!(field(header, "changeType"), &Avro::Enum(1, "UPDATE".into()));
    assert!(strings(field(header, "changedFields")).contains(&"OwnerId".to_owned()));
    assert_eq!(
        field(header, "changeOrigin"),
        &Avro::String(String::new()),
        "a UI edit"
    );
    assert_eq!(
        field(&updated, "OwnerId"),
        &Avro::Union(1, Box::new(Avro::String(new_owner)))
    );
    assert_eq!(
        field(&updated, "Name"),
        &Avro::Union(0, Box::new(Avro::Null)),
        "unchanged fields are null"
    );
}

#[tokio::test]
async fn replay_resumes_after_a_stored_id_and_refuses_an_expired_one() {
    let org = start(Config::default()).await;
    let schema = schema(&org).await;
    let path = "/composite/sobjects/Account/Shopify_Company_Id__c";
    for (co, name) in [("r1", "One"), ("r2", "Two"), ("r3", "Three")] {
        org.patch(path, json!({"records": [account(co, name)]}))
            .await;
    }
    let mut all = subscribe(&org, ReplayPreset::Earliest, Vec::new(), 10)
        .await
        .unwrap();
    let mut events = Vec::new();
    while events.len() < 3 {
        let r = all.events().await.unwrap();
        events.extend(r.events.iter().map(|e| (e.replay_id.clone(), r.clone())));
    }
    let stored = events[0].0.clone();

    let mut resumed = subscribe(&org, ReplayPreset::Custom, stored.clone(), 10)
        .await
        .unwrap();
    let mut names = Vec::new();
    while names.len() < 2 {
        let r = resumed.events().await.unwrap();
        for i in 0..r.events.len() {
            names.push(field(&decode(&schema, &r, i), "Name").clone());
        }
    }
    let name = |s: &str| Avro::Union(1, Box::new(Avro::String(s.into())));
    assert_eq!(names, vec![name("Two"), name("Three")]);

    org.sim.advance_clock(Duration::from_secs(73 * 3600));
    let token = common::login(&org.http, &org.sim).await;
    let org = Org { token, ..org };
    let err = match subscribe(&org, ReplayPreset::Custom, stored, 10).await {
        Ok(mut sub) => sub
            .events()
            .await
            .expect_err("an expired replay id is refused"),
        Err(status) => status,
    };
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        err.metadata().get("error-code").unwrap(),
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    );

    // Every event aged out: a new one still gets an id above every id issued before.
    let newest = |org: &Org| org.sim.change_events().last().map(|e| e.replay_id);
    org.patch(path, json!({"records": [account("r4", "Four")]}))
        .await;
    assert_eq!(newest(&org), Some(4));
}

#[tokio::test]
async fn an_invalid_token_is_unauthenticated() {
    let org = start(Config::default()).await;
    let err = client(&org)
        .await
        .get_topic(authed(
            &org,
            TopicRequest {
                topic_name: TOPIC.into(),
            },
            "00D!bogus",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
}
