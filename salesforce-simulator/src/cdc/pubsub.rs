//! The Pub/Sub API service: `GetTopic`, `GetSchema` and `Subscribe` (flow control by
//! `num_requested`, replay from `LATEST`, `EARLIEST` or a stored replay id) over the change
//! event channels; requests authenticate with the `accesstoken`, `instanceurl` and `tenantid`
//! metadata.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status, Streaming};

use super::bus::{replay_bytes, replay_from_bytes, Topic};
use super::proto::pub_sub_server::PubSub;
use super::proto::{
    ConsumerEvent, FetchRequest, FetchResponse, ManagedFetchRequest, ManagedFetchResponse,
    ProducerEvent, PublishRequest, PublishResponse, ReplayPreset, SchemaInfo, SchemaRequest,
    TopicInfo, TopicRequest,
};
use crate::state::Shared;

/// The error code Salesforce puts in the `error-code` trailer for a replay id it will not
/// resume from (outside the retention window, or never issued).
pub const REPLAY_ID_CORRUPTED: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted";
/// The error code for failed authentication.
pub const AUTH_ERROR: &str = "sfdc.platform.eventbus.grpc.service.auth.error";

/// The service.
pub struct PubSubService {
    shared: Arc<Shared>,
}

impl PubSubService {
    /// Serves the change events of `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        PubSubService { shared }
    }
}

fn rpc_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn status(code: Code, message: &str, error_code: &str) -> Status {
    let rpc = rpc_id();
    let mut metadata = MetadataMap::new();
    if let Ok(v) = MetadataValue::try_from(error_code) {
        metadata.insert("error-code", v);
    }
    if let Ok(v) = MetadataValue::try_from(rpc.as_str()) {
        metadata.insert("rpc-id", v);
    }
    Status::with_metadata(code, format!("{message} rpcId: {rpc}"), metadata)
}

fn authenticate(st: &Shared, metadata: &MetadataMap) -> Result<(), Status> {
    let get = |k: &str| metadata.get(k).and_then(|v| v.to_str().ok());
    let ok = get("accesstoken").is_some_and(|t| st.tokens.is_valid(t, st.now()))
        && get("instanceurl").is_some()
        && get("tenantid").is_some_and(|t| t == st.config.org_id || t == &st.config.org_id[..15]);
    if ok {
        Ok(())
    } else {
        Err(status(
            Code::Unauthenticated,
            "The session does not have valid auth credentials.",
            AUTH_ERROR,
        ))
    }
}

fn unknown_topic(name: &str) -> Status {
    status(
        Code::NotFound,
        &format!("The topic {name} does not exist or you do not have access to it."),
        "sfdc.platform.eventbus.grpc.subscription.topic.not.found",
    )
}

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl PubSub for PubSubService {
    async fn get_topic(
        &self,
        request: Request<TopicRequest>,
    ) -> Result<Response<TopicInfo>, Status> {
        authenticate(&self.shared, request.metadata())?;
        let name = request.into_inner().topic_name;
        let topic = self
            .shared
            .bus
            .topic(&name)
            .ok_or_else(|| unknown_topic(&name))?;
        let schema_id = match topic {
            Topic::Entity(e) => self
                .shared
                .bus
                .schema_of(e)
                .map(|s| s.id.clone())
                .unwrap_or_default(),
            Topic::All => String::new(),
        };
        Ok(Response::new(TopicInfo {
            topic_name: name,
            tenant_guid: self.shared.config.org_id.clone(),
            can_publish: false,
            can_subscribe: true,
            schema_id,
            rpc_id: rpc_id(),
        }))
    }

    async fn get_schema(
        &self,
        request: Request<SchemaRequest>,
    ) -> Result<Response<SchemaInfo>, Status> {
        authenticate(&self.shared, request.metadata())?;
        let id = request.into_inner().schema_id;
        let schema = self.shared.bus.schema(&id).ok_or_else(|| {
            status(
                Code::NotFound,
                &format!("Schema {id} not found."),
                "sfdc.platform.eventbus.grpc.schema.not.found",
            )
        })?;
        Ok(Response::new(SchemaInfo {
            schema_json: schema.json.clone(),
            schema_id: schema.id.clone(),
            rpc_id: rpc_id(),
        }))
    }

    type SubscribeStream = Stream_<FetchResponse>;

    async fn subscribe(
        &self,
        request: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        authenticate(&self.shared, request.metadata())?;
        let mut requests = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let st = self.shared.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_subscription(&st, &mut requests, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn publish(
        &self,
        _: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        Err(Status::unimplemented("change events cannot be published"))
    }

    type PublishStreamStream = Stream_<PublishResponse>;

    async fn publish_stream(
        &self,
        _: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        Err(Status::unimplemented("change events cannot be published"))
    }

    type ManagedSubscribeStream = Stream_<ManagedFetchResponse>;

    async fn managed_subscribe(
        &self,
        _: Request<Streaming<ManagedFetchRequest>>,
    ) -> Result<Response<Self::ManagedSubscribeStream>, Status> {
        Err(Status::unimplemented(
            "managed subscriptions are not simulated",
        ))
    }
}

/// Runs one subscription until the client goes away or an error ends it.
async fn serve_subscription(
    st: &Shared,
    requests: &mut Streaming<FetchRequest>,
    tx: &mpsc::Sender<Result<FetchResponse, Status>>,
) -> Result<(), Status> {
    let first = requests
        .next()
        .await
        .ok_or_else(|| Status::cancelled("no FetchRequest"))??;
    let topic = st
        .bus
        .topic(&first.topic_name)
        .ok_or_else(|| unknown_topic(&first.topic_name))?;
    let now = st.now();
    let mut position = match ReplayPreset::try_from(first.replay_preset)
        .unwrap_or(ReplayPreset::Latest)
    {
        ReplayPreset::Latest => st.bus.latest(),
        ReplayPreset::Earliest => st.bus.before_earliest(now),
        ReplayPreset::Custom => {
            replay_from_bytes(&first.replay_id)
                .filter(|id| st.bus.is_retained(*id, now))
                .ok_or_else(|| {
                    status(
                        Code::InvalidArgument,
                        "The Replay ID validation failed. Ensure that the Replay ID is valid and within the retention window.",
                        REPLAY_ID_CORRUPTED,
                    )
                })?
        }
    };
    let mut credit = i64::from(first.num_requested.max(0));
    let mut published = st.bus.watch();
    let keepalive = st.config.keepalive;
    loop {
        if credit > 0 {
            let events = st.bus.after(topic, position, credit as usize, st.now());
            if !events.is_empty() {
                credit -= events.len() as i64;
                position = events.last().map_or(position, |e| e.replay_id);
                let response = FetchResponse {
                    events: events
                        .into_iter()
                        .map(|e| ConsumerEvent {
                            event: Some(ProducerEvent {
                                id: e.uuid,
                                schema_id: e.schema_id,
                                payload: e.payload,
                                headers: Vec::new(),
                            }),
                            replay_id: replay_bytes(e.replay_id),
                        })
                        .collect(),
                    latest_replay_id: replay_bytes(position),
                    rpc_id: rpc_id(),
                    pending_num_requested: credit as i32,
                };
                if tx.send(Ok(response)).await.is_err() {
                    return Ok(());
                }
                continue;
            }
        }
        tokio::select! {
            more = requests.next() => match more {
                Some(Ok(r)) => credit += i64::from(r.num_requested.max(0)),
                Some(Err(_)) | None => return Ok(()),
            },
            changed = published.changed(), if credit > 0 => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            () = tokio::time::sleep(keepalive) => {
                let keep = FetchResponse {
                    events: Vec::new(),
                    latest_replay_id: replay_bytes(position.max(st.bus.latest())),
                    rpc_id: rpc_id(),
                    pending_num_requested: credit as i32,
                };
                if tx.send(Ok(keep)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}
