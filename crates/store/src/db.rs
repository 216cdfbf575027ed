//! Rows of the diary file: the operation log with its row codec, the entry states with theirs,
//! recomputing states from the log, and the device row. The diary API (`lib.rs`) and the sync
//! calls (`sync.rs`) both sit on these functions; nothing here reads a clock or knows about
//! sync.

use chrono::{DateTime, Utc};
use heeldiary_core::{EntryState, Field, Hlc, Op, Patch};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Result, StoreError};

/// This device's id, made and recorded the first time the file is opened.
pub(crate) fn ensure_device(conn: &Connection) -> Result<Uuid> {
    let existing: Option<String> = conn
        .query_row("SELECT device_id FROM device", [], |r| r.get(0))
        .optional()?;
    let text = match existing {
        Some(text) => text,
        None => {
            let id = Uuid::now_v7().to_string();
            conn.execute(
                "INSERT INTO device (singleton, device_id, created_at) VALUES (1, ?1, ?2)",
                params![id, Utc::now().to_rfc3339()],
            )?;
            id
        }
    };
    Uuid::parse_str(&text).map_err(StoreError::corrupt)
}

/// The correction of the device clock learnt from the server, in milliseconds.
pub(crate) fn clock_offset_ms(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT clock_offset_ms FROM sync_state", [], |r| r.get(0))?)
}

/// Records an entry whose only operation is `op`, leaving its state column empty: the state is
/// that operation's patch, so a bulk import or first pull writes each value once. Returns false
/// when the entry exists already.
pub(crate) fn insert_first_state(tx: &Connection, op: &Op) -> Result<bool> {
    let day = op.patch.get(&Field::Day).and_then(Value::as_str);
    let inserted = tx
        .prepare_cached(
            "INSERT INTO entries (entry_id, day, deleted, state) VALUES (?1, ?2, ?3, NULL)
             ON CONFLICT (entry_id) DO NOTHING",
        )?
        .execute(params![op.entry_id.to_string(), day, op.is_tombstone()])?;
    Ok(inserted == 1)
}

/// Recomputes the states of `only` (or of every entry) from their operations.
pub(crate) fn rebuild(tx: &Transaction<'_>, only: Option<&[Uuid]>) -> Result<usize> {
    let ids: Vec<Uuid> = match only {
        Some(ids) => ids.to_vec(),
        None => {
            // An entry row with no operation behind it describes nothing: the log is the truth.
            tx.execute(
                "DELETE FROM entries WHERE entry_id NOT IN (SELECT entry_id FROM ops)",
                [],
            )?;
            let mut stmt = tx.prepare("SELECT DISTINCT entry_id FROM ops")?;
            let ids = stmt.query_map([], |r| r.get::<_, String>(0))?;
            ids.map(|t| Uuid::parse_str(&t?).map_err(StoreError::corrupt))
                .collect::<Result<_>>()?
        }
    };
    for id in &ids {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {OP_LOG_COLUMNS} FROM ops WHERE entry_id = ?1"
        ))?;
        let mut state = EntryState::default();
        for op in stmt.query_map([id.to_string()], read_op)? {
            state.apply(&op??);
        }
        save_state(tx, *id, &state)?;
    }
    Ok(ids.len())
}

/// Columns of an operation in the device's log, as [`read_op`] reads them; queries may select
/// more after them.
pub(crate) const OP_LOG_COLUMNS: &str = "entry_id, device_id, device_seq, hlc, patch";

/// Reads an operation from a row that starts with [`OP_LOG_COLUMNS`].
pub(crate) fn read_op(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Op>> {
    let (entry, device, device_seq, hlc, patch): (String, String, u64, String, String) = (
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    );
    Ok((|| {
        Ok(Op {
            entry_id: Uuid::parse_str(&entry).map_err(StoreError::corrupt)?,
            device_id: Uuid::parse_str(&device).map_err(StoreError::corrupt)?,
            device_seq,
            hlc: hlc.parse().map_err(StoreError::corrupt)?,
            patch: serde_json::from_str(&patch).map_err(StoreError::corrupt)?,
        })
    })())
}

/// Appends an operation this device just wrote. Its sequence number is new by construction
/// ([`Stamper::catch_up`](crate::stamper::Stamper::catch_up) runs inside the same transaction), so a collision is a fault, never a
/// write to drop quietly.
pub(crate) fn insert_local_op(conn: &Connection, op: &Op) -> Result<()> {
    if insert_op(conn, op, None)? {
        Ok(())
    } else {
        Err(StoreError::corrupt(format!(
            "device sequence {} is taken",
            op.device_seq
        )))
    }
}

/// Appends an operation unless the log holds its `(device_id, device_seq)` already; `pulled`
/// gives the server cursor and arrival time of a pulled one. Returns whether it was new.
pub(crate) fn insert_op(
    conn: &Connection,
    op: &Op,
    pulled: Option<(u64, DateTime<Utc>)>,
) -> Result<bool> {
    let patch = serde_json::to_string(&op.patch).map_err(StoreError::corrupt)?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO ops (entry_id, device_id, device_seq, hlc, patch, server_cursor, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (device_id, device_seq) DO NOTHING",
        )?
        .execute(params![
            op.entry_id.to_string(),
            op.device_id.to_string(),
            op.device_seq,
            op.hlc.to_string(),
            patch,
            pulled.map(|(cursor, _)| cursor),
            pulled.map(|(_, at)| at.to_rfc3339()),
        ])?;
    Ok(inserted == 1)
}

/// Whether the log holds `op` itself under its `(device_id, device_seq)`: same entry, same stamp.
pub(crate) fn holds_same_op(conn: &Connection, op: &Op) -> Result<bool> {
    let held: Option<(String, String)> = conn
        .prepare_cached("SELECT entry_id, hlc FROM ops WHERE device_id = ?1 AND device_seq = ?2")?
        .query_row(params![op.device_id.to_string(), op.device_seq], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(held
        .is_some_and(|(entry, hlc)| entry == op.entry_id.to_string() && hlc == op.hlc.to_string()))
}

/// The stored state of an entry and, when the state column is empty, its only operation.
pub(crate) const STATE_COLUMNS: &str = "e.state, o.hlc, o.patch";
/// The tables [`STATE_COLUMNS`] come from, entries aliased `e`.
pub(crate) const STATE_JOIN: &str =
    "entries e LEFT JOIN ops o ON e.state IS NULL AND o.entry_id = e.entry_id";

/// Reads a row that starts with [`STATE_COLUMNS`].
pub(crate) fn read_state(
    row: &rusqlite::Row<'_>,
    first: usize,
) -> rusqlite::Result<Result<EntryState>> {
    let state: Option<String> = row.get(first)?;
    let hlc: Option<String> = row.get(first + 1)?;
    let patch: Option<String> = row.get(first + 2)?;
    Ok(match (state, hlc, patch) {
        (Some(state), _, _) => decode_state(&state),
        (None, Some(hlc), Some(patch)) => (|| {
            let hlc: Hlc = hlc.parse().map_err(StoreError::corrupt)?;
            let patch: Patch = serde_json::from_str(&patch).map_err(StoreError::corrupt)?;
            let mut state = EntryState::default();
            for (field, value) in patch {
                state
                    .fields
                    .insert(field, heeldiary_core::FieldValue { hlc, value });
            }
            Ok(state)
        })(),
        _ => Err(StoreError::corrupt(
            "an entry without state has no operation",
        )),
    })
}

/// The state of an entry, or `None` when the file has no such entry.
pub(crate) fn load_state(conn: &Connection, id: Uuid) -> Result<Option<EntryState>> {
    conn.prepare_cached(&format!(
        "SELECT {STATE_COLUMNS} FROM {STATE_JOIN} WHERE e.entry_id = ?1"
    ))?
    .query_row([id.to_string()], |r| read_state(r, 0))
    .optional()?
    .transpose()
}

/// Writes the state of an entry, with the day and deletion it indexes.
pub(crate) fn save_state(conn: &Connection, id: Uuid, state: &EntryState) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO entries (entry_id, day, deleted, state) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (entry_id) DO UPDATE SET day = excluded.day, deleted = excluded.deleted, state = excluded.state",
    )?
    .execute(params![id.to_string(), state.day(), state.is_deleted(), encode_state(state)])?;
    Ok(())
}

/// Entry states are stored grouped by stamp, `{"<hlc>": {"field": value, ...}, ...}`: a new
/// entry is then one stamp and its values, about the size of the operation that made it, instead
/// of repeating the stamp for every field.
fn encode_state(state: &EntryState) -> String {
    let mut by_stamp: std::collections::BTreeMap<String, serde_json::Map<String, Value>> =
        Default::default();
    for (field, current) in &state.fields {
        by_stamp
            .entry(current.hlc.to_string())
            .or_default()
            .insert(field.as_str().to_string(), current.value.clone());
    }
    serde_json::to_string(&by_stamp).expect("entry state serialises")
}

fn decode_state(text: &str) -> Result<EntryState> {
    let by_stamp: std::collections::BTreeMap<Hlc, Patch> =
        serde_json::from_str(text).map_err(StoreError::corrupt)?;
    let mut state = EntryState::default();
    for (hlc, values) in by_stamp {
        for (field, value) in values {
            state
                .fields
                .insert(field, heeldiary_core::FieldValue { hlc, value });
        }
    }
    Ok(state)
}
