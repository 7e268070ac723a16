//! Rows of either backend decoded into the store's types, and JSON encoding, written once.

use serde_json::Value;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::{Db, Record, RunControl, RunRow, RunStatus, StoreError};

/// A journal row (`seq, at, kind, data`) of either backend.
pub(crate) fn decode_record<R: Row>(
    db: &Db,
    run: &str,
    row: &R,
) -> Result<(i64, Record), StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let seq: i64 = row.try_get("seq").map_err(|e| StoreError::CorruptRecord {
        db: db.clone(),
        run: run.to_string(),
        seq: -1,
        reason: e.to_string(),
    })?;
    let corrupt = |reason: String| StoreError::CorruptRecord {
        db: db.clone(),
        run: run.to_string(),
        seq,
        reason,
    };
    let at: i64 = row.try_get("at").map_err(|e| corrupt(e.to_string()))?;
    let kind: String = row.try_get("kind").map_err(|e| corrupt(e.to_string()))?;
    let text: String = row.try_get("data").map_err(|e| corrupt(e.to_string()))?;
    let data: Value = serde_json::from_str(&text)
        .map_err(|e| corrupt(format!("its data is not valid JSON ({e})")))?;
    Ok((seq, Record { at, kind, data }))
}

/// A `runs` row ([`crate::RUN_COLUMNS`]) of either backend.
pub(crate) fn decode_run<R: Row>(db: &Db, row: &R) -> Result<RunRow, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let id: String = row.try_get("id").map_err(|e| StoreError::CorruptRun {
        db: db.clone(),
        run: "?".to_string(),
        column: "id",
        reason: e.to_string(),
    })?;
    let corrupt = |column: &'static str, reason: String| StoreError::CorruptRun {
        db: db.clone(),
        run: id.clone(),
        column,
        reason,
    };
    macro_rules! get {
        ($column:literal) => {
            row.try_get($column)
                .map_err(|e| corrupt($column, e.to_string()))?
        };
    }
    let json = |column: &'static str, text: String| -> Result<Value, StoreError> {
        serde_json::from_str(&text).map_err(|e| corrupt(column, format!("not valid JSON ({e})")))
    };
    Ok(RunRow {
        created_at: get!("created_at"),
        updated_at: get!("updated_at"),
        fleet_path: get!("fleet_path"),
        fleet_name: get!("fleet_name"),
        maintenance: get!("maintenance"),
        status: {
            let text: String = get!("status");
            RunStatus::parse(&text)
                .ok_or_else(|| corrupt("status", format!("unknown status {text:?}")))?
        },
        params: json("params", get!("params"))?,
        fleet_text: get!("fleet_text"),
        fleet_imports: match get!("fleet_imports") {
            Some(text) => Some(json("fleet_imports", text)?),
            None => None,
        },
        owner: get!("owner"),
        lease_until: get!("lease_until"),
        control: match get!("control") {
            Some(text) => {
                let text: String = text;
                Some(
                    RunControl::parse(&text)
                        .ok_or_else(|| corrupt("control", format!("unknown request {text:?}")))?,
                )
            }
            None => None,
        },
        summary: json("summary", get!("summary"))?,
        operator: get!("operator"),
        epoch: get!("epoch"),
        taken_at: get!("taken_at"),
        taken_from: get!("taken_from"),
        id: id.clone(),
    })
}

pub(crate) fn json_text(db: &Db, what: &'static str, value: &Value) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode {
        db: db.clone(),
        what,
        source,
    })
}
