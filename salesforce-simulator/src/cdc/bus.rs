//! The event bus: change events in commit order with their replay ids, kept for the
//! retention window (72 hours) on the simulator clock; subscribers wait on [`EventBus::watch`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::avro::{EncodeError, EventSchema, Header};
use crate::org::Change;
use crate::schema::SObjectType;

/// The channel of all change events.
pub const ALL_CHANGES: &str = "/data/ChangeEvents";

/// One retained event.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    /// Its position in the stream.
    pub replay_id: u64,
    /// The entity it is about.
    pub entity: &'static str,
    /// When it was published.
    pub at: OffsetDateTime,
    /// Its schema.
    pub schema_id: String,
    /// The Avro datum.
    pub payload: Vec<u8>,
    /// The event's unique id.
    pub uuid: String,
}

/// A topic a client may subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    /// `/data/<Entity>ChangeEvent`.
    Entity(&'static str),
    /// `/data/ChangeEvents`.
    All,
}

impl Topic {
    /// Whether events about `entity` belong to this topic.
    pub fn carries(self, entity: &str) -> bool {
        match self {
            Topic::All => true,
            Topic::Entity(e) => e == entity,
        }
    }
}

/// The retained events and the schemas.
pub struct EventBus {
    events: Mutex<VecDeque<StoredEvent>>,
    schemas: HashMap<&'static str, EventSchema>,
    retention: Duration,
    latest: watch::Sender<u64>,
}

/// Encodes a replay id as the Pub/Sub API's opaque bytes.
pub fn replay_bytes(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

/// Decodes replay id bytes this simulator issued.
pub fn replay_from_bytes(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

impl EventBus {
    /// A bus for the entities of `types` that have change events enabled.
    pub fn new(types: &[SObjectType], retention: Duration) -> Result<Self, EncodeError> {
        let schemas = types
            .iter()
            .filter(|t| t.change_events)
            .map(|t| Ok((t.name, EventSchema::for_type(t)?)))
            .collect::<Result<_, EncodeError>>()?;
        Ok(EventBus {
            events: Mutex::new(VecDeque::new()),
            schemas,
            retention,
            latest: watch::channel(0).0,
        })
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<Topic> {
        if name == ALL_CHANGES {
            return Some(Topic::All);
        }
        let entity = name.strip_prefix("/data/")?.strip_suffix("ChangeEvent")?;
        self.schemas
            .keys()
            .find(|e| **e == entity)
            .map(|e| Topic::Entity(e))
    }

    /// The schema of an entity's events.
    pub fn schema_of(&self, entity: &str) -> Option<&EventSchema> {
        self.schemas.get(entity)
    }

    /// The schema with id `id`.
    pub fn schema(&self, id: &str) -> Option<&EventSchema> {
        self.schemas.values().find(|s| s.id == id)
    }

    /// Publishes the changes of one committed transaction (entities without change events
    /// are skipped).
    pub fn publish(
        &self,
        changes: &[Change],
        transaction_key: &str,
        commit_number: i64,
        origin: &str,
        now: OffsetDateTime,
    ) -> Result<(), EncodeError> {
        let mut events = self.events.lock().unwrap();
        // The counter, not the newest retained event: once retention empties the queue, new
        // events must still get ids above every id issued before.
        let mut latest = *self.latest.borrow();
        let mut sequence = 0;
        for change in changes {
            let Some(schema) = self.schemas.get(change.entity) else {
                continue;
            };
            sequence += 1;
            let header = Header {
                origin: origin.to_owned(),
                transaction_key: transaction_key.to_owned(),
                sequence_number: sequence,
                commit_timestamp: now,
                commit_number,
            };
            latest += 1;
            events.push_back(StoredEvent {
                replay_id: latest,
                entity: change.entity,
                at: now,
                schema_id: schema.id.clone(),
                payload: schema.encode(change, &header)?,
                uuid: uuid::Uuid::new_v4().to_string(),
            });
        }
        drop(events);
        self.latest.send_replace(latest);
        Ok(())
    }

    /// Drops events older than the retention window.
    fn purge(&self, events: &mut VecDeque<StoredEvent>, now: OffsetDateTime) {
        while events.front().is_some_and(|e| now - e.at > self.retention) {
            events.pop_front();
        }
    }

    /// Whether `replay_id` names a retained event.
    pub fn is_retained(&self, replay_id: u64, now: OffsetDateTime) -> bool {
        let mut events = self.events.lock().unwrap();
        self.purge(&mut events, now);
        events.iter().any(|e| e.replay_id == replay_id)
    }

    /// The replay id just before the oldest retained event (`EARLIEST`).
    pub fn before_earliest(&self, now: OffsetDateTime) -> u64 {
        let mut events = self.events.lock().unwrap();
        self.purge(&mut events, now);
        events
            .front()
            .map_or(*self.latest.borrow(), |e| e.replay_id - 1)
    }

    /// The newest replay id.
    pub fn latest(&self) -> u64 {
        *self.latest.borrow()
    }

    /// Up to `max` events of `topic` after `after`.
    pub fn after(
        &self,
        topic: Topic,
        after: u64,
        max: usize,
        now: OffsetDateTime,
    ) -> Vec<StoredEvent> {
        let mut events = self.events.lock().unwrap();
        self.purge(&mut events, now);
        events
            .iter()
            .filter(|e| e.replay_id > after && topic.carries(e.entity))
            .take(max)
            .cloned()
            .collect()
    }

    /// Every retained event (for tests).
    pub fn all(&self) -> Vec<StoredEvent> {
        self.events.lock().unwrap().iter().cloned().collect()
    }

    /// A receiver that changes when events are published.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }
}
