//! Change events decoded from their Avro payload: the `ChangeEventHeader` and the record's
//! fields. `changedFields`/`nulledFields`/`diffFields` arrive from Salesforce as bitmaps over
//! the schema's field positions (`0x650004E0`, and `4-0x10` for the sub-fields of compound
//! field 4); they are expanded into field names here (plain names are kept as they are).

use std::sync::Arc;

use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::Error;

/// `changeType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeType {
    /// A new record.
    Create,
    /// Changed fields of a record.
    Update,
    /// A deleted record.
    Delete,
    /// A record restored from the recycle bin.
    Undelete,
    /// A change Salesforce could not describe field by field (`GAP_*`): re-read the record.
    Gap,
    /// Too many changes in one transaction (`GAP_OVERFLOW`): re-read the entity's records.
    GapOverflow,
    /// A snapshot of the record.
    Snapshot,
}

impl ChangeType {
    fn parse(symbol: &str) -> Result<Self, Error> {
        Ok(match symbol {
            "CREATE" => ChangeType::Create,
            "UPDATE" => ChangeType::Update,
            "DELETE" => ChangeType::Delete,
            "UNDELETE" => ChangeType::Undelete,
            "GAP_CREATE" | "GAP_UPDATE" | "GAP_DELETE" | "GAP_UNDELETE" => ChangeType::Gap,
            "GAP_OVERFLOW" => ChangeType::GapOverflow,
            "SNAPSHOT" => ChangeType::Snapshot,
            other => return Err(Error::Avro(format!("unknown changeType {other}"))),
        })
    }
}

/// One change to one or more records of an entity.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeEvent {
    /// Where to resume after this event (store it once the event is handled).
    pub replay_id: Vec<u8>,
    /// `entityName`, e.g. `Account`.
    pub entity: String,
    /// What happened.
    pub change_type: ChangeType,
    /// `recordIds`: the records changed in the same way.
    pub record_ids: Vec<String>,
    /// The fields changed (updates), as names.
    pub changed_fields: Vec<String>,
    /// The fields set to null, as names.
    pub nulled_fields: Vec<String>,
    /// `changeOrigin`, e.g. `com/salesforce/api/rest/62.0;client=…` (empty for UI edits).
    pub change_origin: String,
    /// `transactionKey`, shared by the events of one transaction.
    pub transaction_key: String,
    /// `commitTimestamp`.
    pub commit_timestamp: OffsetDateTime,
    /// `commitUser`.
    pub commit_user: String,
    /// The non-null field values, plus each nulled field as `null` (on updates, unchanged
    /// fields are null in the payload and left out).
    pub fields: Map<String, Value>,
}

impl ChangeEvent {
    /// Whether the change was written through the API by the client that names itself
    /// `client` in `Sforce-Call-Options` (`changeOrigin` `…;client=NAME`).
    pub fn is_from(&self, client: &str) -> bool {
        self.change_origin
            .split(';')
            .skip(1)
            .filter_map(|option| option.split_once('='))
            .any(|(name, value)| name.trim() == "client" && value.trim() == client)
    }
}

/// A change event schema from `GetSchema`.
#[derive(Debug)]
pub struct EventSchema {
    /// Its id.
    pub id: String,
    /// The parsed Avro schema.
    pub schema: Schema,
}

impl EventSchema {
    /// Parses `GetSchema`'s JSON.
    pub fn parse(id: String, json: &str) -> Result<Arc<Self>, Error> {
        let schema = Schema::parse_str(json).map_err(|e| Error::Avro(e.to_string()))?;
        Ok(Arc::new(EventSchema { id, schema }))
    }

    /// Decodes one event's payload.
    pub fn decode(&self, replay_id: Vec<u8>, payload: &[u8]) -> Result<ChangeEvent, Error> {
        let avro = |e: apache_avro::Error| Error::Avro(e.to_string());
        let Avro::Record(fields) =
            apache_avro::from_avro_datum(&self.schema, &mut &payload[..], None).map_err(avro)?
        else {
            return Err(Error::Avro("the payload is not a record".into()));
        };
        let mut header = None;
        let mut body = Map::new();
        for (name, value) in fields {
            if name == "ChangeEventHeader" {
                header = Some(value);
                continue;
            }
            let value = Value::try_from(value).map_err(avro)?;
            if !value.is_null() {
                body.insert(name, value);
            }
        }
        let Some(Avro::Record(header)) = header else {
            return Err(Error::Avro("no ChangeEventHeader".into()));
        };
        let get = |key: &str| {
            header
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .ok_or_else(|| Error::Avro(format!("no ChangeEventHeader.{key}")))
        };
        let string = |key: &str| match get(key)? {
            Avro::String(s) => Ok(s.clone()),
            Avro::Enum(_, s) => Ok(s.clone()),
            other => Err(Error::Avro(format!("{key} is {other:?}"))),
        };
        let strings = |key: &str| match get(key)? {
            Avro::Array(items) => items
                .iter()
                .map(|v| match v {
                    Avro::String(s) => Ok(s.clone()),
                    other => Err(Error::Avro(format!("{key} holds {other:?}"))),
                })
                .collect::<Result<Vec<_>, _>>(),
            other => Err(Error::Avro(format!("{key} is {other:?}"))),
        };
        let commit_timestamp = match get("commitTimestamp")? {
            Avro::Long(ms) => {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(*ms) * 1_000_000)
                    .map_err(|e| Error::Avro(e.to_string()))?
            }
            other => return Err(Error::Avro(format!("commitTimestamp is {other:?}"))),
        };
        let changed_fields = expand_bitmaps(&self.schema, &strings("changedFields")?);
        let nulled_fields = expand_bitmaps(&self.schema, &strings("nulledFields")?);
        for f in &nulled_fields {
            body.insert(f.clone(), Value::Null);
        }
        Ok(ChangeEvent {
            replay_id,
            entity: string("entityName")?,
            change_type: ChangeType::parse(&string("changeType")?)?,
            record_ids: strings("recordIds")?,
            changed_fields,
            nulled_fields,
            change_origin: string("changeOrigin")?,
            transaction_key: string("transactionKey")?,
            commit_timestamp,
            commit_user: string("commitUser")?,
            fields: body,
        })
    }
}

/// The field names of a record schema (or of the record inside a `["null", record]` union).
fn record_fields(schema: &Schema) -> Vec<&str> {
    match schema {
        Schema::Record(r) => r.fields.iter().map(|f| f.name.as_str()).collect(),
        Schema::Union(u) => u.variants().iter().flat_map(record_fields).collect(),
        _ => Vec::new(),
    }
}

/// The positions of the bits set in a hexadecimal bitmap, lowest first.
fn bits(hex: &str) -> Vec<usize> {
    hex.chars()
        .rev()
        .filter_map(|c| c.to_digit(16))
        .enumerate()
        .flat_map(|(digit, value)| {
            (0..4)
                .filter(move |bit| value & (1 << bit) != 0)
                .map(move |bit| digit * 4 + bit)
        })
        .collect()
}

/// Field names from bitmap entries (`0x…` over the top-level fields, `N-0x…` over the
/// sub-fields of compound field N, named `Parent.Child`); other entries are names already.
fn expand_bitmaps(schema: &Schema, entries: &[String]) -> Vec<String> {
    let Schema::Record(record) = schema else {
        return entries.to_vec();
    };
    let mut names = Vec::new();
    for entry in entries {
        if let Some(hex) = entry.strip_prefix("0x") {
            names.extend(
                bits(hex)
                    .into_iter()
                    .filter_map(|i| record.fields.get(i))
                    .map(|f| f.name.clone()),
            );
        } else if let Some((parent, hex)) = entry
            .split_once("-0x")
            .and_then(|(p, h)| Some((record.fields.get(p.parse::<usize>().ok()?)?, h)))
        {
            let children = record_fields(&parent.schema);
            names.extend(
                bits(hex)
                    .into_iter()
                    .filter_map(|i| children.get(i))
                    .map(|child| format!("{}.{child}", parent.name)),
            );
        } else {
            names.push(entry.clone());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_expand_to_field_names_by_schema_position() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "E", "fields": [
                {"name": "ChangeEventHeader", "type": "string"},
                {"name": "Name", "type": ["null", {"type": "record", "name": "N", "fields": [
                    {"name": "Salutation", "type": ["null", "string"]},
                    {"name": "FirstName", "type": ["null", "string"]},
                    {"name": "LastName", "type": ["null", "string"]}]}]},
                {"name": "Phone", "type": ["null", "string"]},
                {"name": "Email", "type": ["null", "string"]},
                {"name": "LastModifiedDate", "type": ["null", "long"]}
            ]}"#,
        )
        .unwrap();
        // 0x14 = bits 2 and 4: Phone, LastModifiedDate; 1-0x6: Name's bits 1 and 2.
        let names = expand_bitmaps(&schema, &["0x14".into(), "1-0x6".into(), "Email".into()]);
        assert_eq!(
            names,
            [
                "Phone",
                "LastModifiedDate",
                "Name.FirstName",
                "Name.LastName",
                "Email"
            ]
        );
        assert_eq!(bits("0x100".trim_start_matches("0x")), [8]);
    }
}
