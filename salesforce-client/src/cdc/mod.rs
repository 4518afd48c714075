//! Change Data Capture over the Pub/Sub API (gRPC, `eventbus.v1.PubSub`): a [`Subscriber`]
//! looks topics up, fetches and caches event schemas by id, and opens [`Subscription`]s that
//! ask for events `batch` at a time (the API's flow control) and decode them into
//! [`ChangeEvent`]s.
//!
//! Every call carries the org's session as the `accesstoken`, `instanceurl` and `tenantid`
//! metadata; an `UNAUTHENTICATED` answer to opening a call logs in again once. A subscription
//! that ends (server restart, expired session, idle limit) is resumed by subscribing again
//! with [`Replay::Custom`] and the replay id of the last event handled; a replay id outside
//! the retention window (72 h for change events) is refused with [`Error::ReplayIdInvalid`].
//! Pub/Sub calls do not count against the REST API budget and bypass the REST breaker.

mod event;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use salesforce_pubsub::pub_sub_client::PubSubClient;
use salesforce_pubsub::{FetchRequest, FetchResponse, ReplayPreset, SchemaRequest, TopicRequest};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

pub use event::{ChangeEvent, ChangeType, EventSchema};
pub use salesforce_pubsub::TopicInfo;

use crate::auth::Session;
use crate::{Client, Error};

/// The `error-code` Salesforce gives a replay id it will not resume from.
pub const REPLAY_ID_CORRUPTED: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted";

/// Where a subscription starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replay {
    /// New events only.
    Latest,
    /// The oldest retained event.
    Earliest,
    /// The event after this stored replay id.
    Custom(Vec<u8>),
}

/// A Pub/Sub API client for one org (cheap to clone; clones share the schema cache).
#[derive(Clone, Debug)]
pub struct Subscriber {
    client: Client,
    grpc: PubSubClient<Channel>,
    schemas: Arc<Mutex<HashMap<String, Arc<EventSchema>>>>,
}

fn status_error(status: Status) -> Error {
    let error_code = status
        .metadata()
        .get("error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if error_code == REPLAY_ID_CORRUPTED {
        return Error::ReplayIdInvalid(status.message().to_owned());
    }
    if status.code() == Code::Unavailable {
        return Error::Transient {
            message: status.message().to_owned(),
            outcome_unknown: false,
        };
    }
    Error::PubSub {
        code: status.code(),
        error_code,
        message: status.message().to_owned(),
    }
}

fn authed<T>(message: T, session: &Session) -> Result<tonic::Request<T>, Error> {
    let value = |v: &str| {
        MetadataValue::try_from(v)
            .map_err(|_| Error::Decode("session not usable as gRPC metadata".into()))
    };
    let mut req = tonic::Request::new(message);
    let md = req.metadata_mut();
    md.insert("accesstoken", value(session.access_token.expose_secret())?);
    md.insert("instanceurl", value(&session.instance_url)?);
    md.insert("tenantid", value(&session.org_id)?);
    Ok(req)
}

impl Subscriber {
    /// Connects to the Pub/Sub API at `endpoint` (`https://api.pubsub.salesforce.com:7443`,
    /// or the simulator's `pubsub_url()`), authenticating as `client`'s org. Plaintext
    /// gRPC only for now: Salesforce's endpoint needs TLS (see the README).
    pub async fn connect(client: Client, endpoint: impl Into<String>) -> Result<Self, Error> {
        let grpc = PubSubClient::connect(endpoint.into())
            .await
            .map_err(|e| Error::Transient {
                message: format!("Pub/Sub API: {e}"),
                outcome_unknown: false,
            })?;
        Ok(Subscriber {
            client,
            grpc,
            schemas: Arc::default(),
        })
    }

    /// Runs `call` with the session's metadata, logging in again once on `UNAUTHENTICATED`.
    async fn with_session<T, F, Fut>(&self, mut call: F) -> Result<T, Error>
    where
        F: FnMut(PubSubClient<Channel>, Arc<Session>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let session = self.client.session().await?;
        match call(self.grpc.clone(), session.clone()).await {
            Err(Error::PubSub {
                code: Code::Unauthenticated,
                ..
            }) => {
                self.client.invalidate_session(&session).await;
                let session = self.client.session().await?;
                call(self.grpc.clone(), session).await
            }
            other => other,
        }
    }

    /// `GetTopic`: whether the topic exists and may be subscribed to, and its schema id.
    pub async fn topic(&self, name: &str) -> Result<TopicInfo, Error> {
        self.with_session(|mut grpc, session| async move {
            let req = authed(
                TopicRequest {
                    topic_name: name.to_owned(),
                },
                &session,
            )?;
            grpc.get_topic(req)
                .await
                .map(tonic::Response::into_inner)
                .map_err(status_error)
        })
        .await
    }

    /// `GetSchema`, cached by schema id (a schema id never changes meaning).
    pub async fn schema(&self, schema_id: &str) -> Result<Arc<EventSchema>, Error> {
        if let Some(s) = self.schemas.lock().expect("schema cache").get(schema_id) {
            return Ok(s.clone());
        }
        let info = self
            .with_session(|mut grpc, session| async move {
                let req = authed(
                    SchemaRequest {
                        schema_id: schema_id.to_owned(),
                    },
                    &session,
                )?;
                grpc.get_schema(req)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(status_error)
            })
            .await?;
        let schema = EventSchema::parse(schema_id.to_owned(), &info.schema_json)?;
        self.schemas
            .lock()
            .expect("schema cache")
            .insert(schema_id.to_owned(), schema.clone());
        Ok(schema)
    }

    /// Subscribes to `topic` (`/data/AccountChangeEvent`, `/data/ChangeEvents`…) from
    /// `replay`, asking for `batch` events at a time (Salesforce allows up to 100).
    pub async fn subscribe(
        &self,
        topic: &str,
        replay: Replay,
        batch: i32,
    ) -> Result<Subscription, Error> {
        let batch = batch.clamp(1, 100);
        let (preset, replay_id) = match replay {
            Replay::Latest => (ReplayPreset::Latest, Vec::new()),
            Replay::Earliest => (ReplayPreset::Earliest, Vec::new()),
            Replay::Custom(id) => (ReplayPreset::Custom, id),
        };
        let first = FetchRequest {
            topic_name: topic.to_owned(),
            replay_preset: preset as i32,
            replay_id,
            num_requested: batch,
            auth_refresh: String::new(),
        };
        let (requests, responses) = self
            .with_session(|mut grpc, session| {
                let first = first.clone();
                async move {
                    let (tx, rx) = mpsc::channel(4);
                    tx.send(first).await.expect("the receiver is held below");
                    let responses = grpc
                        .subscribe(authed(ReceiverStream::new(rx), &session)?)
                        .await
                        .map_err(status_error)?
                        .into_inner();
                    Ok((tx, responses))
                }
            })
            .await?;
        Ok(Subscription {
            subscriber: self.clone(),
            topic: topic.to_owned(),
            requests,
            responses,
            batch,
            pending: batch,
            buffered: VecDeque::new(),
            latest_replay_id: Vec::new(),
        })
    }
}

/// An open subscription; read it with [`Subscription::next`].
pub struct Subscription {
    subscriber: Subscriber,
    topic: String,
    requests: mpsc::Sender<FetchRequest>,
    responses: Streaming<FetchResponse>,
    batch: i32,
    pending: i32,
    buffered: VecDeque<ChangeEvent>,
    latest_replay_id: Vec<u8>,
}

impl Subscription {
    /// The next event, waiting for one; `None` when Salesforce closed the stream (subscribe
    /// again from the last replay id handled).
    pub async fn next(&mut self) -> Result<Option<ChangeEvent>, Error> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                return Ok(Some(event));
            }
            if self.pending <= 0 {
                let more = FetchRequest {
                    topic_name: self.topic.clone(),
                    num_requested: self.batch,
                    ..FetchRequest::default()
                };
                if self.requests.send(more).await.is_err() {
                    return Ok(None);
                }
                self.pending = self.batch;
            }
            let Some(response) = self.responses.message().await.map_err(status_error)? else {
                return Ok(None);
            };
            self.pending = response.pending_num_requested;
            self.latest_replay_id = response.latest_replay_id;
            for consumer in response.events {
                let event = consumer
                    .event
                    .ok_or_else(|| Error::Decode("a ConsumerEvent without its event".into()))?;
                let schema = self.subscriber.schema(&event.schema_id).await?;
                self.buffered
                    .push_back(schema.decode(consumer.replay_id, &event.payload)?);
            }
        }
    }

    /// The newest replay id the server reported (also on empty keepalive responses): where
    /// to resume when every delivered event has been handled.
    pub fn latest_replay_id(&self) -> &[u8] {
        &self.latest_replay_id
    }
}
