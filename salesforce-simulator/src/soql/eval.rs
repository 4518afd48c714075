//! Runs a parsed query against the org: filtering, ordering, limits and the REST shape of
//! the rows (`attributes`, nested parent records).

use std::cmp::Ordering;

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::parse::{Cond, Literal, Op, Query};
use crate::ids;
use crate::org::{Org, Record};
use crate::schema::{FieldKind, SObjectType};

/// Why a parsed query cannot run (Salesforce answers `INVALID_FIELD` / `INVALID_TYPE`).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// No such object.
    #[error("sObject type '{0}' is not supported.")]
    UnknownObject(String),
    /// No such field or relationship.
    #[error("No such column '{field}' on entity '{object}'.")]
    UnknownField {
        /// The path as written.
        field: String,
        /// The object.
        object: String,
    },
}

/// The result of a query: the rows in REST shape, or only a count for `COUNT()`.
pub struct Rows {
    /// The rows (empty for `COUNT()`).
    pub records: Vec<Value>,
    /// `totalSize`.
    pub total: usize,
}

/// Runs `query` against `org`; rows link to `/services/data/v{version}/…`.
pub fn run(org: &Org, query: &Query, version: &str) -> Result<Rows, EvalError> {
    let ty = org
        .sobject(&query.from)
        .ok_or_else(|| EvalError::UnknownObject(query.from.clone()))?;
    let paths: Vec<&Vec<String>> = query
        .fields
        .iter()
        .chain(query.order.iter().map(|o| &o.field))
        .chain(filter_paths(query.filter.as_ref()))
        .collect();
    for p in paths {
        resolve_path(org, ty, p)?;
    }
    let mut rows: Vec<&Record> = org
        .records(ty.name)
        .filter(|r| query.filter.as_ref().is_none_or(|c| matches(org, ty, r, c)))
        .collect();
    if !query.order.is_empty() {
        rows.sort_by(|a, b| {
            for o in &query.order {
                let (va, vb) = (
                    value_at(org, ty, a, &o.field),
                    value_at(org, ty, b, &o.field),
                );
                let ord = match (va.is_null(), vb.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => {
                        if o.nulls_last {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    (false, true) => {
                        if o.nulls_last {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (false, false) => {
                        let ord = compare_values(&va, &vb);
                        if o.descending {
                            ord.reverse()
                        } else {
                            ord
                        }
                    }
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }
    let rows = rows
        .into_iter()
        .skip(query.offset.unwrap_or(0))
        .take(query.limit.unwrap_or(usize::MAX));
    if query.count {
        return Ok(Rows {
            records: Vec::new(),
            total: rows.count(),
        });
    }
    let records: Vec<Value> = rows.map(|r| shape(org, ty, r, query, version)).collect();
    Ok(Rows {
        total: records.len(),
        records,
    })
}

fn filter_paths(cond: Option<&Cond>) -> Vec<&Vec<String>> {
    match cond {
        None => Vec::new(),
        Some(Cond::Compare(p, _, _) | Cond::In(p, _, _)) => vec![p],
        Some(Cond::And(a, b) | Cond::Or(a, b)) => {
            let mut v = filter_paths(Some(a));
            v.extend(filter_paths(Some(b)));
            v
        }
        Some(Cond::Not(a)) => filter_paths(Some(a)),
    }
}

/// The canonical names of a path (`account.name` → `("Account", "Name")`) and the kind of
/// the final field.
fn resolve_path(
    org: &Org,
    ty: &SObjectType,
    path: &[String],
) -> Result<(Vec<&'static str>, FieldKind), EvalError> {
    let unknown = || EvalError::UnknownField {
        field: path.join("."),
        object: ty.name.to_owned(),
    };
    match path {
        [field] => {
            let f = ty.field(field).ok_or_else(unknown)?;
            Ok((vec![f.name], f.kind))
        }
        [rel, field] => {
            let lookup = ty.relationship(rel).ok_or_else(unknown)?;
            let (target, rel_name) = lookup.reference.expect("relationships are lookups");
            let parent = org.sobject(target).ok_or_else(unknown)?;
            let f = parent.field(field).ok_or_else(unknown)?;
            Ok((vec![rel_name, f.name], f.kind))
        }
        _ => Err(unknown()),
    }
}

fn parent<'a>(
    org: &'a Org,
    ty: &SObjectType,
    record: &Record,
    rel: &str,
) -> Option<(&'a SObjectType, &'a Record)> {
    let lookup = ty.relationship(rel)?;
    let (target, _) = lookup.reference?;
    let id = record.get(lookup.name)?.as_str()?;
    Some((org.sobject(target)?, org.get(target, id)?))
}

fn value_at(org: &Org, ty: &SObjectType, record: &Record, path: &[String]) -> Value {
    match path {
        [field] => ty
            .field(field)
            .and_then(|f| record.get(f.name))
            .cloned()
            .unwrap_or(Value::Null),
        [rel, field] => parent(org, ty, record, rel)
            .and_then(|(pty, p)| pty.field(field).and_then(|f| p.get(f.name)))
            .cloned()
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn matches(org: &Org, ty: &SObjectType, record: &Record, cond: &Cond) -> bool {
    match cond {
        Cond::And(a, b) => matches(org, ty, record, a) && matches(org, ty, record, b),
        Cond::Or(a, b) => matches(org, ty, record, a) || matches(org, ty, record, b),
        Cond::Not(a) => !matches(org, ty, record, a),
        Cond::In(path, negated, values) => {
            let v = value_at(org, ty, record, path);
            let kind = resolve_path(org, ty, path).map(|(_, k)| k).ok();
            let found = values.iter().any(|l| compare(&v, Op::Eq, l, kind));
            found != *negated
        }
        Cond::Compare(path, op, lit) => {
            let v = value_at(org, ty, record, path);
            let kind = resolve_path(org, ty, path).map(|(_, k)| k).ok();
            compare(&v, *op, lit, kind)
        }
    }
}

fn compare(value: &Value, op: Op, lit: &Literal, kind: Option<FieldKind>) -> bool {
    if matches!(lit, Literal::Null) {
        return match op {
            Op::Eq => value.is_null(),
            Op::Ne => !value.is_null(),
            _ => false,
        };
    }
    if value.is_null() {
        return op == Op::Ne;
    }
    if op == Op::Like {
        return match (value.as_str(), lit) {
            (Some(s), Literal::Text(p)) => like(&s.to_lowercase(), &p.to_lowercase()),
            _ => false,
        };
    }
    let ord = match (value, lit) {
        (Value::String(s), Literal::Text(t)) => {
            if matches!(kind, Some(FieldKind::Id | FieldKind::Reference)) {
                let t = ids::normalize(t).unwrap_or_else(|| t.clone());
                Some(s.to_lowercase().cmp(&t.to_lowercase()))
            } else {
                Some(s.to_lowercase().cmp(&t.to_lowercase()))
            }
        }
        (Value::Number(n), Literal::Number(m)) => n.as_f64().and_then(|n| n.partial_cmp(m)),
        (Value::Bool(b), Literal::Bool(c)) => Some(b.cmp(c)),
        (Value::String(s), Literal::Temporal(t)) => match kind {
            Some(FieldKind::DateTime) => match (parse_datetime(s), parse_datetime(t)) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => None,
            },
            _ => Some(s.as_str().cmp(t.as_str())),
        },
        _ => None,
    };
    let Some(ord) = ord else {
        return op == Op::Ne;
    };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::Like => false,
    }
}

fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&s.replace("+0000", "Z"), &Rfc3339))
        .ok()
}

fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        _ => Ordering::Equal,
    }
}

/// SQL `LIKE` with `%` (any run) and `_` (one character).
fn like(s: &str, pattern: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut si, mut pi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

fn attributes(ty: &str, id: &str, version: &str) -> Value {
    json!({"type": ty, "url": format!("/services/data/v{version}/sobjects/{ty}/{id}")})
}

fn shape(org: &Org, ty: &SObjectType, record: &Record, query: &Query, version: &str) -> Value {
    let id = record["Id"].as_str().unwrap_or_default();
    let mut out = Map::new();
    out.insert("attributes".into(), attributes(ty.name, id, version));
    for path in &query.fields {
        let Ok((names, _)) = resolve_path(org, ty, path) else {
            continue;
        };
        match names.as_slice() {
            [field] => {
                out.insert(
                    (*field).into(),
                    record.get(*field).cloned().unwrap_or(Value::Null),
                );
            }
            [rel, field] => match parent(org, ty, record, rel) {
                Some((pty, p)) => {
                    let entry = out.entry(*rel).or_insert_with(|| {
                        let pid = p["Id"].as_str().unwrap_or_default();
                        json!({"attributes": attributes(pty.name, pid, version)})
                    });
                    if let Some(obj) = entry.as_object_mut() {
                        obj.insert(
                            (*field).into(),
                            p.get(*field).cloned().unwrap_or(Value::Null),
                        );
                    }
                }
                None => {
                    out.insert((*rel).into(), Value::Null);
                }
            },
            _ => {}
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_matches_wildcards() {
        assert!(like("bob@acme.com", "%@acme.com"));
        assert!(like("abc", "a_c"));
        assert!(!like("abcd", "a_c"));
        assert!(like("anything", "%"));
    }
}
