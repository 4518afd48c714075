//! Bulk API 2.0 for backlogs: one object's records of a batch as one CSV upsert job by
//! external id, instead of an sObject Collections call per 200. A job costs a handful of API
//! calls whatever its size (create, upload, close, the polls, three result files), so a
//! backfill of a million records spends hundreds of calls instead of thousands.
//!
//! A record's fields become columns (`Name`), its relationships by external id dotted
//! columns (`Account.Shopify_Company_Id__c`); a field the record leaves out is an empty cell
//! (left unset), a JSON null `#N/A` (set to null). The job's per-row results are matched back
//! to the records by external id, so every record gets the same outcome a Collections upsert
//! would give it.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;
use wholesail_salesforce::bulk::CsvData;
use wholesail_salesforce::{Client, Error, RecordFailure, RecordOutcome};

use super::mapping::SObject;

/// How long to wait for a job.
#[derive(Clone, Copy, Debug)]
pub struct Wait {
    /// Between two polls of the job's state.
    pub poll: Duration,
    /// Past this the job is left running and its records are retried (upserts by external id
    /// make the second write an update).
    pub deadline: Duration,
}

/// Upserts `records` of `sobject` in one Bulk job; an outcome per record, in order.
pub async fn upsert(
    client: &Client,
    sobject: SObject,
    records: &[&Value],
    wait: Wait,
) -> Result<Vec<RecordOutcome>, Error> {
    let (header, rows) = table(records);
    let data = tokio::task::spawn_blocking(move || CsvData::from_table(&header, rows))
        .await
        .map_err(|e| Error::Csv(format!("writing the CSV: {e}")))??;
    let (name, external_id) = (sobject.name(), sobject.external_id());
    let job = client.bulk_upsert(name, external_id, &data).await?;
    client
        .wait_for_bulk_job(&job.id, wait.poll, wait.deadline)
        .await?;
    let results = client.bulk_results(&job.id).await?;

    let mut index: HashMap<&str, Vec<usize>> = HashMap::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let key = record[external_id].as_str().unwrap_or_default();
        index.entry(key).or_default().push(i);
    }
    let mut outcomes: Vec<RecordOutcome> = (0..records.len())
        .map(|_| retry(format!("not in the results of Bulk job {}", job.id)))
        .collect();
    let mut set = |fields: &std::collections::BTreeMap<String, String>, outcome: RecordOutcome| {
        let key = fields
            .get(external_id)
            .map(String::as_str)
            .unwrap_or_default();
        for &i in index.get(key).into_iter().flatten() {
            outcomes[i] = outcome.clone();
        }
    };
    for row in &results.saved {
        let outcome = match row.created {
            true => RecordOutcome::Created { id: row.id.clone() },
            false => RecordOutcome::Updated { id: row.id.clone() },
        };
        set(&row.fields, outcome);
    }
    for row in &results.failed {
        set(&row.fields, RecordOutcome::Failed(row.failure.clone()));
    }
    for row in &results.unprocessed {
        set(
            row,
            retry(format!("unprocessed: Bulk job {} stopped first", job.id)),
        );
    }
    Ok(outcomes)
}

/// A failure that a later attempt may not have.
fn retry(message: String) -> RecordOutcome {
    RecordOutcome::Failed(RecordFailure {
        codes: vec!["BULK_UNPROCESSED".into()],
        message,
        fields: Vec::new(),
        retryable: true,
    })
}

/// The CSV columns (the union of the records' fields, sorted) and a row per record.
fn table(records: &[&Value]) -> (Vec<String>, Vec<Vec<String>>) {
    let flat: Vec<Vec<(String, String)>> = records.iter().map(|r| flatten(r)).collect();
    let header: BTreeSet<&str> = flat.iter().flatten().map(|(k, _)| k.as_str()).collect();
    let column: HashMap<&str, usize> = header.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let rows = flat
        .iter()
        .map(|cells| {
            let mut row = vec![String::new(); column.len()];
            for (k, v) in cells {
                row[column[k.as_str()]].clone_from(v);
            }
            row
        })
        .collect();
    (header.into_iter().map(str::to_owned).collect(), rows)
}

/// A record's (column, cell) pairs: relationships by external id as `Parent.Field`.
fn flatten(record: &Value) -> Vec<(String, String)> {
    let mut cells = Vec::new();
    for (field, value) in record.as_object().into_iter().flatten() {
        match value {
            Value::Object(reference) => {
                for (key, v) in reference {
                    cells.push((format!("{field}.{key}"), cell(v)));
                }
            }
            v => cells.push((field.clone(), cell(v))),
        }
    }
    cells
}

/// A value as Bulk API 2.0 reads it: `#N/A` is null.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "#N/A".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_become_one_table_with_relationship_columns_and_null_markers() {
        let a = json!({"Shopify_Line_Id__c": "1", "Order": {"Shopify_Order_Id__c": "9"},
                       "Quantity": 2, "UnitPrice": 10.5});
        let b = json!({"Shopify_Line_Id__c": "2", "Quantity": 1, "Description": null,
                       "IsActive": true});
        let (header, rows) = table(&[&a, &b]);
        assert_eq!(
            header,
            [
                "Description",
                "IsActive",
                "Order.Shopify_Order_Id__c",
                "Quantity",
                "Shopify_Line_Id__c",
                "UnitPrice"
            ]
        );
        assert_eq!(rows[0], ["", "", "9", "2", "1", "10.5"]);
        assert_eq!(rows[1], ["#N/A", "true", "", "1", "2", ""]);
    }
}
