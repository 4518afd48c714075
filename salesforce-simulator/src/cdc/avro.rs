//! Change event schemas and payloads: one Avro record schema per entity
//! (`AccountChangeEvent`, …) with the `ChangeEventHeader` and every field as an optional
//! value, encoded as a bare Avro datum the way the Pub/Sub API delivers it.

use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::clock::epoch_millis;
use crate::org::{Change, ChangeType};
use crate::schema::{FieldKind, SObjectType};

const CHANGE_TYPES: [&str; 10] = [
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
    "SNAPSHOT",
];

/// The event schema of one entity.
#[derive(Clone, Debug)]
pub struct EventSchema {
    /// `GetSchema`'s id: derived from the schema text.
    pub id: String,
    /// The schema as JSON text.
    pub json: String,
    /// The parsed schema.
    pub schema: Schema,
    fields: Vec<(&'static str, FieldKind)>,
}

/// Why an event could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the change event: {0}")]
pub struct EncodeError(#[from] apache_avro::Error);

fn avro_type(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Boolean => "boolean",
        FieldKind::Number => "double",
        FieldKind::Date => "int",
        FieldKind::DateTime => "long",
        _ => "string",
    }
}

impl EventSchema {
    /// The schema of `<entity>ChangeEvent`.
    pub fn for_type(ty: &SObjectType) -> Result<Self, EncodeError> {
        let fields: Vec<(&'static str, FieldKind)> = ty
            .fields
            .iter()
            .filter(|f| f.name != "Id")
            .map(|f| (f.name, f.kind))
            .collect();
        let strings = json!({"type": "array", "items": "string"});
        let mut avro_fields = vec![json!({
            "name": "ChangeEventHeader",
            "type": {
                "type": "record",
                "name": "ChangeEventHeader",
                "fields": [
                    {"name": "entityName", "type": "string"},
                    {"name": "recordIds", "type": strings},
                    {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "symbols": CHANGE_TYPES}},
                    {"name": "changeOrigin", "type": "string"},
                    {"name": "transactionKey", "type": "string"},
                    {"name": "sequenceNumber", "type": "int"},
                    {"name": "commitTimestamp", "type": "long"},
                    {"name": "commitNumber", "type": "long"},
                    {"name": "commitUser", "type": "string"},
                    {"name": "nulledFields", "type": strings},
                    {"name": "diffFields", "type": strings},
                    {"name": "changedFields", "type": strings},
                ]
            }
        })];
        avro_fields.extend(fields.iter().map(|(name, kind)| {
            json!({"name": name, "type": ["null", avro_type(*kind)], "default": null})
        }));
        let text = json!({
            "type": "record",
            "name": format!("{}ChangeEvent", ty.name),
            "namespace": "com.sforce.eventbus",
            "fields": avro_fields,
        })
        .to_string();
        let schema = Schema::parse_str(&text)?;
        let digest = Sha256::digest(text.as_bytes());
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)[..22].to_owned();
        Ok(EventSchema {
            id,
            json: text,
            schema,
            fields,
        })
    }

    /// Encodes `change` (one of transaction `transaction_key`).
    pub fn encode(&self, change: &Change, header: &Header) -> Result<Vec<u8>, EncodeError> {
        let strings =
            |v: &[String]| Avro::Array(v.iter().map(|s| Avro::String(s.clone())).collect());
        let nulled: Vec<String> = change
            .values
            .iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| k.clone())
            .collect();
        let change_type = change.change_type.as_str();
        let index = CHANGE_TYPES
            .iter()
            .position(|c| *c == change_type)
            .unwrap_or(0) as u32;
        let changed = if change.change_type == ChangeType::Update {
            change.changed_fields.clone()
        } else {
            Vec::new()
        };
        let mut record = vec![(
            "ChangeEventHeader".to_owned(),
            Avro::Record(vec![
                ("entityName".into(), Avro::String(change.entity.into())),
                (
                    "recordIds".into(),
                    strings(std::slice::from_ref(&change.record_id)),
                ),
                ("changeType".into(), Avro::Enum(index, change_type.into())),
                ("changeOrigin".into(), Avro::String(header.origin.clone())),
                (
                    "transactionKey".into(),
                    Avro::String(header.transaction_key.clone()),
                ),
                ("sequenceNumber".into(), Avro::Int(header.sequence_number)),
                (
                    "commitTimestamp".into(),
                    Avro::Long(epoch_millis(header.commit_timestamp)),
                ),
                ("commitNumber".into(), Avro::Long(header.commit_number)),
                ("commitUser".into(), Avro::String(change.user_id.clone())),
                ("nulledFields".into(), strings(&nulled)),
                ("diffFields".into(), Avro::Array(Vec::new())),
                ("changedFields".into(), strings(&changed)),
            ]),
        )];
        for (name, kind) in &self.fields {
            let value = change
                .values
                .get(*name)
                .map_or(Avro::Union(0, Box::new(Avro::Null)), |v| to_avro(v, *kind));
            record.push(((*name).to_owned(), value));
        }
        Ok(apache_avro::to_avro_datum(
            &self.schema,
            Avro::Record(record),
        )?)
    }
}

/// The transaction facts of a change event header.
pub struct Header {
    /// `changeOrigin`, e.g. `com/salesforce/api/rest/62.0`.
    pub origin: String,
    /// Shared by the events of one transaction.
    pub transaction_key: String,
    /// Position within the transaction, from 1.
    pub sequence_number: i32,
    /// When the transaction committed.
    pub commit_timestamp: time::OffsetDateTime,
    /// The transaction's system change number.
    pub commit_number: i64,
}

fn to_avro(v: &Value, kind: FieldKind) -> Avro {
    let some = |x| Avro::Union(1, Box::new(x));
    let value = match (kind, v) {
        (_, Value::Null) => return Avro::Union(0, Box::new(Avro::Null)),
        (FieldKind::Boolean, Value::Bool(b)) => Avro::Boolean(*b),
        (FieldKind::Number, Value::Number(n)) => Avro::Double(n.as_f64().unwrap_or_default()),
        (FieldKind::Date, Value::String(s)) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            match time::Date::parse(s, format) {
                Ok(d) => Avro::Int(
                    d.to_julian_day()
                        - time::Date::from_julian_day(2_440_588).map_or(0, |e| e.to_julian_day()),
                ),
                Err(_) => return Avro::Union(0, Box::new(Avro::Null)),
            }
        }
        (FieldKind::DateTime, Value::String(s)) => {
            let rfc = s.replace("+0000", "Z");
            match time::OffsetDateTime::parse(&rfc, &time::format_description::well_known::Rfc3339)
            {
                Ok(t) => Avro::Long(epoch_millis(t)),
                Err(_) => return Avro::Union(0, Box::new(Avro::Null)),
            }
        }
        (_, Value::String(s)) => Avro::String(s.clone()),
        (_, other) => Avro::String(other.to_string()),
    };
    some(value)
}
