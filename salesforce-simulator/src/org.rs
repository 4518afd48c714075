//! The in-memory org: records per sObject, external-id indexes, and the save rules a real
//! org applies (types, lengths, required fields, lookups, uniqueness, the validation and
//! duplicate rules of Wholesail's org). Every write goes through a [`Txn`] that can be rolled
//! back (`allOrNone`) and carries the change events it will publish on commit.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::clock::sf_datetime;
use crate::errors::RecordError;
use crate::ids::{self, IdGenerator};
use crate::schema::{standard_objects, Field, FieldKind, SObjectType};

/// A record: field name → JSON value (`Id` and audit fields included).
pub type Record = Map<String, Value>;

/// The kind of change a change event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeType {
    /// A record was created.
    Create,
    /// A record was updated.
    Update,
    /// A record was deleted.
    Delete,
}

impl ChangeType {
    /// `CREATE`, `UPDATE`, `DELETE`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Create => "CREATE",
            ChangeType::Update => "UPDATE",
            ChangeType::Delete => "DELETE",
        }
    }
}

/// One record change, as Change Data Capture will report it.
#[derive(Clone, Debug)]
pub struct Change {
    /// The sObject.
    pub entity: &'static str,
    /// The record.
    pub record_id: String,
    /// Create, update or delete.
    pub change_type: ChangeType,
    /// Fields set (create) or changed (update).
    pub changed_fields: Vec<String>,
    /// Values of those fields.
    pub values: Record,
    /// Who made it.
    pub user_id: String,
}

enum Undo {
    Created(&'static str, String),
    Replaced(&'static str, Record),
    Deleted(&'static str, Record),
}

/// The writes of one transaction: what to undo on rollback, what to publish on commit.
#[derive(Default)]
pub struct Txn {
    undo: Vec<Undo>,
    /// The change events, in order.
    pub changes: Vec<Change>,
}

/// A point in a transaction to roll back to.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    undo: usize,
    changes: usize,
}

impl Txn {
    /// The current point.
    pub fn mark(&self) -> Mark {
        Mark {
            undo: self.undo.len(),
            changes: self.changes.len(),
        }
    }
}

/// The outcome of one saved record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    /// The record id.
    pub id: String,
    /// Whether it was created (false: updated).
    pub created: bool,
}

/// The org's data.
pub struct Org {
    types: Vec<SObjectType>,
    tables: HashMap<&'static str, BTreeMap<String, Record>>,
    /// (object, external id field, lower-cased value) → record id.
    external: HashMap<(&'static str, &'static str, String), String>,
    ids: IdGenerator,
    /// The integration user's id (`CreatedById`, default owner).
    pub user_id: String,
    /// The standard price book's id.
    pub standard_pricebook: String,
}

impl Default for Org {
    fn default() -> Self {
        Org::new(OffsetDateTime::UNIX_EPOCH)
    }
}

impl Org {
    /// An org with the standard objects and the standard price book.
    pub fn new(now: OffsetDateTime) -> Self {
        let types = standard_objects();
        let tables = types.iter().map(|t| (t.name, BTreeMap::new())).collect();
        let ids = IdGenerator::default();
        let user_id = ids.next("005");
        let mut org = Org {
            types,
            tables,
            external: HashMap::new(),
            ids,
            user_id,
            standard_pricebook: String::new(),
        };
        let mut txn = Txn::default();
        let mut book = Record::new();
        book.insert("Name".into(), "Standard Price Book".into());
        book.insert("IsActive".into(), true.into());
        let id = org
            .create(&mut txn, "Pricebook2", &book, now)
            .expect("the standard price book is valid");
        let mut rec = org.tables["Pricebook2"][&id].clone();
        rec.insert("IsStandard".into(), true.into());
        org.put("Pricebook2", rec);
        org.standard_pricebook = id;
        org
    }

    /// The type named `name` (case-insensitive).
    pub fn sobject(&self, name: &str) -> Option<&SObjectType> {
        self.types
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Every record of `object`, in id order.
    pub fn records(&self, object: &str) -> impl Iterator<Item = &Record> {
        self.sobject(object)
            .and_then(|t| self.tables.get(t.name))
            .into_iter()
            .flat_map(|t| t.values())
    }

    /// The record `id` of `object`.
    pub fn get(&self, object: &str, id: &str) -> Option<&Record> {
        let t = self.sobject(object)?;
        self.tables.get(t.name)?.get(&ids::normalize(id)?)
    }

    /// The record of `object` whose external id `field` is `value`.
    pub fn find_external(&self, object: &str, field: &str, value: &str) -> Option<&Record> {
        let t = self.sobject(object)?;
        let f = t.field(field)?;
        let id = self.external.get(&(t.name, f.name, value.to_lowercase()))?;
        self.tables.get(t.name)?.get(id)
    }

    /// Number of records of `object`.
    pub fn count(&self, object: &str) -> usize {
        self.records(object).count()
    }

    fn put(&mut self, object: &'static str, record: Record) -> Option<Record> {
        let id = record["Id"].as_str().expect("records have ids").to_owned();
        let old = self
            .tables
            .get_mut(object)?
            .insert(id.clone(), record.clone());
        if let Some(old) = &old {
            self.unindex(object, old);
        }
        self.index(object, &record, &id);
        old
    }

    fn remove(&mut self, object: &'static str, id: &str) -> Option<Record> {
        let old = self.tables.get_mut(object)?.remove(id)?;
        self.unindex(object, &old);
        Some(old)
    }

    fn external_fields(&self, object: &str) -> Vec<&'static str> {
        self.sobject(object)
            .map(|t| {
                t.fields
                    .iter()
                    .filter(|f| f.external_id)
                    .map(|f| f.name)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn index(&mut self, object: &'static str, record: &Record, id: &str) {
        for field in self.external_fields(object) {
            if let Some(v) = record.get(field).and_then(Value::as_str) {
                self.external
                    .insert((object, field, v.to_lowercase()), id.to_owned());
            }
        }
    }

    fn unindex(&mut self, object: &'static str, record: &Record) {
        for field in self.external_fields(object) {
            if let Some(v) = record.get(field).and_then(Value::as_str) {
                self.external.remove(&(object, field, v.to_lowercase()));
            }
        }
    }

    /// Undoes every write of `txn` (newest first) and drops its change events.
    pub fn rollback(&mut self, mut txn: Txn) {
        self.rollback_to(
            &mut txn,
            Mark {
                undo: 0,
                changes: 0,
            },
        );
    }

    /// Undoes the writes of `txn` after `mark` and drops their change events.
    pub fn rollback_to(&mut self, txn: &mut Txn, mark: Mark) {
        txn.changes.truncate(mark.changes);
        while txn.undo.len() > mark.undo {
            let undo = txn.undo.pop().expect("longer than the mark");
            match undo {
                Undo::Created(object, id) => {
                    self.remove(object, &id);
                }
                Undo::Replaced(object, before) | Undo::Deleted(object, before) => {
                    self.put(object, before);
                }
            }
        }
    }

    /// Creates or updates the record of `object` whose external id `ext_field` has the
    /// value in `input`.
    pub fn upsert(
        &mut self,
        txn: &mut Txn,
        object: &str,
        ext_field: &str,
        input: &Record,
        now: OffsetDateTime,
    ) -> Result<Saved, RecordError> {
        let ty = self.type_of(object)?;
        let field = ty
            .field(ext_field)
            .filter(|f| f.external_id)
            .ok_or_else(|| {
                RecordError::new(
                    "INVALID_FIELD",
                    format!("Provided external ID field does not exist or is not accessible: {ext_field}"),
                    &[],
                )
            })?;
        let value = input
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(field.name))
            .and_then(|(_, v)| match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .ok_or_else(|| {
                RecordError::new(
                    "MISSING_ARGUMENT",
                    format!("{} not specified", field.name),
                    &[],
                )
            })?;
        match self.find_external(ty.name, field.name, &value) {
            Some(existing) => {
                let id = existing["Id"].as_str().unwrap_or_default().to_owned();
                self.update(txn, ty.name, &id, input, now)?;
                Ok(Saved { id, created: false })
            }
            None => {
                let id = self.create(txn, ty.name, input, now)?;
                Ok(Saved { id, created: true })
            }
        }
    }

    /// Creates a record of `object`; returns its id.
    pub fn create(
        &mut self,
        txn: &mut Txn,
        object: &str,
        input: &Record,
        now: OffsetDateTime,
    ) -> Result<String, RecordError> {
        self.create_as(txn, object, input, now, &self.user_id.clone())
    }

    /// Creates a record as `user` would in the Salesforce UI.
    pub fn create_as(
        &mut self,
        txn: &mut Txn,
        object: &str,
        input: &Record,
        now: OffsetDateTime,
        user: &str,
    ) -> Result<String, RecordError> {
        let ty = self.type_of(object)?.clone();
        let mut record = self.prepare(&ty, input)?;
        if ty.field("OwnerId").is_some() && !record.contains_key("OwnerId") {
            record.insert("OwnerId".into(), user.into());
        }
        if ty.name == "Order" && record.get("Status").is_none_or(Value::is_null) {
            record.insert("Status".into(), "Draft".into());
        }
        self.derive(&ty, &mut record);
        self.check_record(&ty, &record, None)?;
        self.check_duplicates(&ty, &record)?;
        let id = self.ids.next(ty.key_prefix);
        let stamp = Value::from(sf_datetime(now));
        let mut full = Record::new();
        full.insert("Id".into(), id.clone().into());
        full.insert("IsDeleted".into(), false.into());
        full.insert("CreatedDate".into(), stamp.clone());
        full.insert("CreatedById".into(), user.into());
        full.insert("LastModifiedDate".into(), stamp.clone());
        full.insert("LastModifiedById".into(), user.into());
        full.insert("SystemModstamp".into(), stamp);
        for f in &ty.fields {
            if let Some(v) = record.get(f.name) {
                full.insert(f.name.into(), v.clone());
            }
        }
        let mut values = full.clone();
        values.retain(|_, v| !v.is_null());
        let changed_fields = values.keys().filter(|k| *k != "Id").cloned().collect();
        self.put(ty.name, full);
        txn.undo.push(Undo::Created(ty.name, id.clone()));
        txn.changes.push(Change {
            entity: ty.name,
            record_id: id.clone(),
            change_type: ChangeType::Create,
            changed_fields,
            values,
            user_id: user.to_owned(),
        });
        Ok(id)
    }

    /// Updates the record `id` of `object` with the fields of `input`.
    pub fn update(
        &mut self,
        txn: &mut Txn,
        object: &str,
        id: &str,
        input: &Record,
        now: OffsetDateTime,
    ) -> Result<(), RecordError> {
        let user = self.user_id.clone();
        self.update_as(txn, object, id, input, now, &user)
    }

    /// Updates a record as `user` would in the Salesforce UI.
    pub fn update_as(
        &mut self,
        txn: &mut Txn,
        object: &str,
        id: &str,
        input: &Record,
        now: OffsetDateTime,
        user: &str,
    ) -> Result<(), RecordError> {
        let ty = self.type_of(object)?.clone();
        let id = ids::normalize(id).ok_or_else(|| {
            RecordError::new(
                "MALFORMED_ID",
                format!("Id: id value of incorrect type: {id}"),
                &["Id"],
            )
        })?;
        let before = self
            .tables
            .get(ty.name)
            .and_then(|t| t.get(&id))
            .cloned()
            .ok_or_else(|| RecordError::new("ENTITY_IS_DELETED", "entity is deleted", &[]))?;
        let mut changes = self.prepare(&ty, input)?;
        changes.remove("Id");
        if let Some(field) = ty
            .fields
            .iter()
            .find(|f| f.create_only && changes.contains_key(f.name))
        {
            return Err(RecordError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!("Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", field.name),
                &[field.name],
            ));
        }
        self.derive(&ty, &mut changes);
        let mut after = before.clone();
        for (k, v) in &changes {
            after.insert(k.clone(), v.clone());
        }
        self.check_record(&ty, &after, Some(&id))?;
        let stamp = Value::from(sf_datetime(now));
        let mut changed_fields: Vec<String> = changes
            .iter()
            .filter(|(k, v)| before.get(*k).unwrap_or(&Value::Null) != *v)
            .map(|(k, _)| k.clone())
            .collect();
        after.insert("LastModifiedDate".into(), stamp.clone());
        after.insert("LastModifiedById".into(), user.into());
        after.insert("SystemModstamp".into(), stamp);
        changed_fields.push("LastModifiedDate".into());
        let values = changed_fields
            .iter()
            .map(|k| (k.clone(), after.get(k).cloned().unwrap_or(Value::Null)))
            .collect();
        self.put(ty.name, after);
        txn.undo.push(Undo::Replaced(ty.name, before));
        txn.changes.push(Change {
            entity: ty.name,
            record_id: id,
            change_type: ChangeType::Update,
            changed_fields,
            values,
            user_id: user.to_owned(),
        });
        Ok(())
    }

    /// Deletes the record `id` of `object`.
    pub fn delete(&mut self, txn: &mut Txn, object: &str, id: &str) -> Result<(), RecordError> {
        let ty = self.type_of(object)?;
        let name = ty.name;
        let id = ids::normalize(id)
            .ok_or_else(|| RecordError::new("MALFORMED_ID", "malformed id", &[]))?;
        let before = self
            .remove(name, &id)
            .ok_or_else(|| RecordError::new("ENTITY_IS_DELETED", "entity is deleted", &[]))?;
        txn.undo.push(Undo::Deleted(name, before));
        txn.changes.push(Change {
            entity: name,
            record_id: id,
            change_type: ChangeType::Delete,
            changed_fields: Vec::new(),
            values: Record::new(),
            user_id: self.user_id.clone(),
        });
        Ok(())
    }

    /// The record ids a write of `input` locks: the record itself (when it exists) and its
    /// locking parents. Invalid input locks nothing (it fails later).
    pub fn lock_keys(&self, object: &str, ext_field: Option<&str>, input: &Record) -> Vec<String> {
        let Ok(ty) = self.type_of(object) else {
            return Vec::new();
        };
        let Ok(record) = self.prepare(ty, input) else {
            return Vec::new();
        };
        let mut keys: Vec<String> = ty
            .locking_parents
            .iter()
            .filter_map(|p| record.get(*p).and_then(Value::as_str).map(str::to_owned))
            .collect();
        if let Some(id) = input
            .get("Id")
            .and_then(Value::as_str)
            .and_then(ids::normalize)
        {
            keys.push(id);
        }
        if let Some(field) = ext_field {
            if let Some(v) = record.get(field).and_then(Value::as_str) {
                if let Some(existing) = self.find_external(ty.name, field, v) {
                    keys.push(existing["Id"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
        keys
    }

    fn type_of(&self, object: &str) -> Result<&SObjectType, RecordError> {
        self.sobject(object).ok_or_else(|| {
            RecordError::new(
                "INVALID_TYPE",
                format!("sObject type '{object}' is not supported."),
                &[],
            )
        })
    }

    /// Checks and converts the fields of `input` (relationship references by external id
    /// resolved to ids); `Id` passes through for updates.
    fn prepare(&self, ty: &SObjectType, input: &Record) -> Result<Record, RecordError> {
        let mut out = Record::new();
        for (key, value) in input {
            if key == "attributes" {
                continue;
            }
            if let Some(field) = ty.field(key) {
                if field.name == "Id" {
                    out.insert("Id".into(), value.clone());
                    continue;
                }
                if field.read_only {
                    return Err(RecordError::new(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        format!("Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", field.name),
                        &[field.name],
                    ));
                }
                out.insert(field.name.into(), self.convert(field, value)?);
            } else if let (Some(field), Value::Object(reference)) = (ty.relationship(key), value) {
                let id = self.resolve_reference(field, reference)?;
                out.insert(field.name.into(), id.into());
            } else {
                return Err(RecordError::new(
                    "INVALID_FIELD",
                    format!("No such column '{key}' on sobject of type {}", ty.name),
                    &[],
                ));
            }
        }
        Ok(out)
    }

    fn resolve_reference(&self, field: &Field, reference: &Record) -> Result<String, RecordError> {
        let (target, _) = field.reference.expect("relationship fields are lookups");
        let mut keys = reference.iter().filter(|(k, _)| *k != "attributes");
        let (Some((ext, value)), None) = (keys.next(), keys.next()) else {
            return Err(RecordError::new(
                "INVALID_FIELD",
                format!(
                    "A relationship reference for {} must name exactly one external ID field",
                    field.name
                ),
                &[field.name],
            ));
        };
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let is_external = self
            .sobject(target)
            .and_then(|t| t.field(ext))
            .is_some_and(|f| f.external_id);
        if !is_external {
            return Err(RecordError::new(
                "INVALID_FIELD",
                format!("Field name provided, {ext} is not an External ID or indexed field for {target}"),
                &[],
            ));
        }
        self.find_external(target, ext, &value)
            .and_then(|r| r["Id"].as_str().map(str::to_owned))
            .ok_or_else(|| {
                RecordError::new(
                    "INVALID_FIELD",
                    format!("Foreign key external ID: {value} not found for field {ext} in entity {target}"),
                    &[],
                )
            })
    }

    fn convert(&self, field: &Field, value: &Value) -> Result<Value, RecordError> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let wrong_type = || {
            RecordError::new(
                "INVALID_TYPE_ON_FIELD_IN_RECORD",
                format!("{}: value not of required type: {value}", field.name),
                &[field.name],
            )
        };
        let text = || match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(wrong_type()),
        };
        match field.kind {
            FieldKind::Text | FieldKind::Url | FieldKind::Email => {
                let s = text()?;
                if let Some(max) = field.length {
                    if s.chars().count() > max {
                        let shown: String = s.chars().take(20).collect();
                        return Err(RecordError::new(
                            "STRING_TOO_LONG",
                            format!(
                                "{}: data value too large: {shown}... (max length={max})",
                                field.name
                            ),
                            &[field.name],
                        ));
                    }
                }
                if field.kind == FieldKind::Email && !s.is_empty() && !is_email(&s) {
                    return Err(RecordError::new(
                        "INVALID_EMAIL_ADDRESS",
                        format!("{}: invalid email address: {s}", field.name),
                        &[field.name],
                    ));
                }
                Ok(s.into())
            }
            FieldKind::Number => match value {
                Value::Number(_) => Ok(value.clone()),
                Value::String(s) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(wrong_type),
                _ => Err(wrong_type()),
            },
            FieldKind::Boolean => match value {
                Value::Bool(_) => Ok(value.clone()),
                Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true.into()),
                Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false.into()),
                _ => Err(wrong_type()),
            },
            FieldKind::Date => {
                let s = text()?;
                let format = time::macros::format_description!("[year]-[month]-[day]");
                time::Date::parse(&s, format).map_err(|_| wrong_type())?;
                Ok(s.into())
            }
            FieldKind::DateTime => {
                let s = text()?;
                let t = OffsetDateTime::parse(&s, &Rfc3339)
                    .or_else(|_| OffsetDateTime::parse(&s.replace("+0000", "Z"), &Rfc3339))
                    .map_err(|_| wrong_type())?;
                Ok(sf_datetime(t).into())
            }
            FieldKind::Reference => {
                let s = text()?;
                let (target, _) = field.reference.expect("references have a target");
                let id = ids::normalize(&s).ok_or_else(|| {
                    RecordError::new(
                        "MALFORMED_ID",
                        format!("{}: id value of incorrect type: {s}", field.name),
                        &[field.name],
                    )
                })?;
                let exists = if target == "User" {
                    id.starts_with("005")
                } else {
                    self.get(target, &id).is_some()
                };
                if !exists {
                    return Err(RecordError::new(
                        "INVALID_CROSS_REFERENCE_KEY",
                        format!("invalid cross reference id: {s}"),
                        &[field.name],
                    ));
                }
                Ok(id.into())
            }
            FieldKind::Id => Ok(value.clone()),
        }
    }

    /// Fields Salesforce fills from others (an order item's product from its price book entry).
    fn derive(&self, ty: &SObjectType, record: &mut Record) {
        if matches!(ty.name, "OrderItem" | "QuoteLineItem") {
            let product = record
                .get("PricebookEntryId")
                .and_then(Value::as_str)
                .and_then(|e| self.get("PricebookEntry", e))
                .and_then(|e| e.get("Product2Id").cloned());
            if let Some(product) = product {
                record.insert("Product2Id".into(), product);
            }
        }
    }

    /// Required fields, the org's validation rules and unique values, on the record as it
    /// would be saved (`existing`: its id when it is an update).
    fn check_record(
        &self,
        ty: &SObjectType,
        record: &Record,
        existing: Option<&str>,
    ) -> Result<(), RecordError> {
        let missing: Vec<&str> = ty
            .fields
            .iter()
            .filter(|f| f.required && record.get(f.name).is_none_or(is_blank))
            .map(|f| f.name)
            .collect();
        if !missing.is_empty() {
            return Err(RecordError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                &missing,
            ));
        }
        // Wholesail's org: a validation rule on order and quote lines.
        if matches!(ty.name, "OrderItem" | "QuoteLineItem")
            && record
                .get("Quantity")
                .and_then(Value::as_f64)
                .is_some_and(|q| q <= 0.0)
        {
            return Err(RecordError::new(
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "Quantity must be greater than zero.",
                &["Quantity"],
            ));
        }
        for field in ty.fields.iter().filter(|f| f.external_id) {
            if let Some(v) = record.get(field.name).and_then(Value::as_str) {
                if let Some(other) = self.find_external(ty.name, field.name, v) {
                    let other_id = other["Id"].as_str().unwrap_or_default();
                    if Some(other_id) != existing {
                        return Err(RecordError::new(
                            "DUPLICATE_VALUE",
                            format!("duplicate value found: {} duplicates value on record with id: {other_id}", field.name),
                            &[field.name],
                        ));
                    }
                }
            }
        }
        if ty.name == "PricebookEntry" && existing.is_none() {
            self.check_price_entry(record)?;
        }
        if ty.name == "OrderItem" && existing.is_none() {
            self.check_order_item_book(record)?;
        }
        Ok(())
    }

    /// An order item's price book entry must belong to its order's price book.
    fn check_order_item_book(&self, record: &Record) -> Result<(), RecordError> {
        let book_of = |object: &str, field: &str| {
            record
                .get(field)
                .and_then(Value::as_str)
                .and_then(|id| self.get(object, id))
                .and_then(|r| r.get("Pricebook2Id").and_then(Value::as_str))
                .map(str::to_owned)
        };
        let order_book = book_of("Order", "OrderId");
        if order_book.is_none() || order_book != book_of("PricebookEntry", "PricebookEntryId") {
            return Err(RecordError::new(
                "FIELD_INTEGRITY_EXCEPTION",
                "field integrity exception: PricebookEntryId (pricebook entry is in a different \
                 pricebook than the one assigned to the order, or Order has no pricebook assigned)",
                &["PricebookEntryId"],
            ));
        }
        Ok(())
    }

    fn check_price_entry(&self, record: &Record) -> Result<(), RecordError> {
        let book = record
            .get("Pricebook2Id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let product = record
            .get("Product2Id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let entry_in = |b: &str| {
            self.records("PricebookEntry").any(|e| {
                e.get("Pricebook2Id").and_then(Value::as_str) == Some(b)
                    && e.get("Product2Id").and_then(Value::as_str) == Some(product)
            })
        };
        if entry_in(book) {
            return Err(RecordError::new(
                "DUPLICATE_VALUE",
                "This price definition already exists in this price book",
                &[],
            ));
        }
        if book != self.standard_pricebook && !entry_in(&self.standard_pricebook) {
            return Err(RecordError::new(
                "STANDARD_PRICE_NOT_DEFINED",
                "Before creating a custom price, create a standard price.",
                &[],
            ));
        }
        Ok(())
    }

    /// Wholesail's duplicate rule on Account: same name and same website domain (creates
    /// only).
    fn check_duplicates(&self, ty: &SObjectType, record: &Record) -> Result<(), RecordError> {
        if ty.name != "Account" {
            return Ok(());
        }
        let key = |r: &Record| {
            let name = r.get("Name")?.as_str()?.trim().to_lowercase();
            let domain = website_domain(r.get("Website")?.as_str()?)?;
            Some((name, domain))
        };
        let Some(new) = key(record) else {
            return Ok(());
        };
        if self
            .records("Account")
            .any(|r| key(r).as_ref() == Some(&new))
        {
            return Err(RecordError::new(
                "DUPLICATES_DETECTED",
                "Use one of these records?",
                &[],
            ));
        }
        Ok(())
    }
}

fn is_blank(v: &Value) -> bool {
    v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty())
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
}

/// `https://www.Example.com/shop` → `example.com`.
fn website_domain(url: &str) -> Option<String> {
    let rest = url.trim().split_once("://").map_or(url.trim(), |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next()?.to_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_owned();
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Record {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn upsert_creates_then_updates_by_external_id() {
        let mut org = Org::default();
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut txn = Txn::default();
        let input = rec(json!({"Name": "Acme", "Shopify_Company_Id__c": "c1"}));
        let first = org
            .upsert(&mut txn, "Account", "Shopify_Company_Id__c", &input, now)
            .unwrap();
        let second = org
            .upsert(&mut txn, "Account", "Shopify_Company_Id__c", &input, now)
            .unwrap();
        assert!(first.created);
        assert!(!second.created);
        assert_eq!(first.id, second.id);
        assert_eq!(org.count("Account"), 1);
    }

    #[test]
    fn rollback_restores_the_previous_state() {
        let mut org = Org::default();
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut txn = Txn::default();
        org.create(
            &mut txn,
            "Account",
            &rec(json!({"Name": "A", "Tax_Id__c": "T1"})),
            now,
        )
        .unwrap();
        org.rollback(txn);
        assert_eq!(org.count("Account"), 0);
        assert!(org.find_external("Account", "Tax_Id__c", "t1").is_none());
    }

    #[test]
    fn save_rules_report_salesforce_codes() {
        let mut org = Org::default();
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut txn = Txn::default();
        let err = |r: Result<String, RecordError>| r.unwrap_err().status_code;
        assert_eq!(
            err(org.create(&mut txn, "Account", &rec(json!({})), now)),
            "REQUIRED_FIELD_MISSING"
        );
        assert_eq!(
            err(org.create(
                &mut txn,
                "Account",
                &rec(json!({"Name": "x".repeat(256)})),
                now
            )),
            "STRING_TOO_LONG"
        );
        assert_eq!(
            err(org.create(
                &mut txn,
                "Account",
                &rec(json!({"Name": "a", "Nope": 1})),
                now
            )),
            "INVALID_FIELD"
        );
        let dup = rec(json!({"Name": "Acme", "Website": "https://www.acme.com/b2b"}));
        org.create(&mut txn, "Account", &dup, now).unwrap();
        let again = rec(json!({"Name": " acme ", "Website": "acme.com"}));
        assert_eq!(
            err(org.create(&mut txn, "Account", &again, now)),
            "DUPLICATES_DETECTED"
        );
    }
}
