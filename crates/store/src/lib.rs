//! The local diary store: one SQLite file per device, holding the field-level operation log and
//! the entry states derived from it.
//!
//! This is the API a mobile shell embeds (through an FFI layer) and the `heeldiary` CLI calls:
//! open, log, edit, delete, get, list by day range, history, import many, plus the few calls the
//! sync client needs. Every change is written as an operation stamped with the device's hybrid
//! logical clock; an entry's state is the per-field merge of its operations (see
//! [`heeldiary_core::EntryState`]), so local edits and pulled ones go through one rule.
//!
//! It depends on `heeldiary-core` and rusqlite only; it must never depend on the network, the
//! server or an async runtime.
//!
//! ```
//! use heeldiary_core::EntryInput;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut store = heeldiary_store::Store::open_in_memory()?;
//! let input: EntryInput = serde_json::from_str(r#"{"day":"2026-11-01","first_step_pain":7}"#)?;
//! let entry = store.log(input)?;
//! assert_eq!(store.get(entry.id)?.first_step_pain, Some(7));
//! # Ok(()) }
//! ```

mod error;
mod schema;
mod sync;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Local, NaiveDate, Utc};
use heeldiary_core::{Entry, EntryError, EntryInput, EntryState, Field, Hlc, HlcClock, Op, Patch};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

pub use error::{Result, StoreError};
pub use schema::SCHEMA_VERSION;
pub use sync::{Enrolment, RemoteApply, SyncState};

/// Where the store reads the time. The default is the device clock with its local offset.
pub type TimeSource = Arc<dyn Fn() -> DateTime<FixedOffset> + Send + Sync>;

/// One device's diary.
pub struct Store {
    conn: Connection,
    stamps: Stamper,
    clock_offset_ms: i64,
    time: TimeSource,
}

/// Hands out this device's clock stamps and sequence numbers. Kept apart from the connection so a
/// transaction can borrow one while the other moves on.
pub(crate) struct Stamper {
    device_id: Uuid,
    clock: HlcClock,
    next_seq: u64,
}

impl Stamper {
    fn stamp(&mut self, entry_id: Uuid, patch: Patch, now_ms: u64) -> Op {
        let hlc = self.clock.tick(now_ms);
        let device_seq = self.next_seq;
        self.next_seq += 1;
        Op {
            entry_id,
            device_id: self.device_id,
            device_seq,
            hlc,
            patch,
        }
    }

    /// Moves past what the file holds: another writer (a second process on the same diary, or
    /// a second handle in one app) may have written since this one last looked. Own stamps grow
    /// with the sequence, so the newest own operation carries the highest; stamps learnt from
    /// other devices are kept in `device.last_hlc`.
    fn catch_up(&mut self, conn: &Connection) -> Result<()> {
        let (observed, newest_seq, newest_hlc): (Option<String>, Option<u64>, Option<String>) =
            conn.prepare_cached(
                "SELECT d.last_hlc, o.device_seq, o.hlc FROM device d LEFT JOIN
                   (SELECT device_seq, hlc FROM ops WHERE device_id = ?1
                    ORDER BY device_seq DESC LIMIT 1) o",
            )?
            .query_row([self.device_id.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        // Every move of the clock is in the file by the time a write commits (own stamps in the
        // log, others in last_hlc), so the file is the truth; a correction made by another handle
        // may have moved it back.
        let mut last = Hlc::zero(self.device_id);
        for text in [observed, newest_hlc].into_iter().flatten() {
            last = last.max(text.parse().map_err(StoreError::corrupt)?);
        }
        self.clock = HlcClock::new(self.device_id, last);
        self.next_seq = newest_seq.unwrap_or(0) + 1;
        Ok(())
    }

    /// Records the clock's last stamp for the next writer, after it moved for a reason the log
    /// does not show by itself (stamps seen from other devices, a corrected clock).
    pub(crate) fn save(&self, conn: &Connection) -> Result<()> {
        conn.prepare_cached("UPDATE device SET last_hlc = ?1")?
            .execute([self.clock.last().to_string()])?;
        Ok(())
    }
}

/// One operation in an entry's history, with what became of each value it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryChange {
    /// Clock stamp of the operation.
    pub hlc: Hlc,
    /// Wall-clock time of the stamp.
    pub at: DateTime<Utc>,
    /// The device that wrote it.
    pub device_id: Uuid,
    /// Its sequence on that device.
    pub device_seq: u64,
    /// When the server stored it, for operations that came through sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<Utc>>,
    /// The values it wrote.
    pub changes: Vec<FieldChange>,
}

/// One value an operation wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The field.
    pub field: Field,
    /// The value written (`null` cleared it).
    pub value: Value,
    /// Whether it is still the current value, or was superseded by a later write.
    pub current: bool,
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Entries created.
    pub entries: usize,
}

impl Store {
    /// Opens (creating if needed) the diary at `path`, applying pending migrations. A file from a
    /// newer heeldiary is refused and left as it is.
    ///
    /// # Failure
    /// [`StoreError::NewerSchema`] for a newer file, [`StoreError::Sqlite`] when the file cannot
    /// be opened or is not a database.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::corrupt(format!("cannot create the folder {}: {e}", dir.display()))
            })?;
        }
        Self::init(Connection::open(path)?)
    }

    /// A diary in memory, gone when dropped; for tests and previews.
    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        schema::prepare(&conn)?;
        schema::migrate(&mut conn, SCHEMA_VERSION)?;
        let device_id = Self::ensure_device(&conn)?;
        let mut store = Store {
            conn,
            stamps: Stamper {
                device_id,
                clock: HlcClock::new(device_id, Hlc::zero(device_id)),
                next_seq: 1,
            },
            clock_offset_ms: 0,
            time: Arc::new(|| Local::now().fixed_offset()),
        };
        store.reload_counters()?;
        Ok(store)
    }

    fn ensure_device(conn: &Connection) -> Result<Uuid> {
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

    /// Re-reads the clock, the next sequence number and the clock offset from the file, so the
    /// in-memory copies never run ahead of what was committed.
    fn reload_counters(&mut self) -> Result<()> {
        let device_id = self.stamps.device_id;
        self.stamps = Stamper {
            device_id,
            clock: HlcClock::new(device_id, Hlc::zero(device_id)),
            next_seq: 1,
        };
        self.stamps.catch_up(&self.conn)?;
        self.clock_offset_ms =
            self.conn
                .query_row("SELECT clock_offset_ms FROM sync_state", [], |r| r.get(0))?;
        Ok(())
    }

    /// Replaces where the store reads the time (tests, or a shell with its own clock).
    pub fn set_time_source(&mut self, time: TimeSource) {
        self.time = time;
    }

    /// This device's id, which stamps its operations.
    pub fn device_id(&self) -> Uuid {
        self.stamps.device_id
    }

    /// The device's time, corrected by the offset learnt from the server.
    pub fn now(&self) -> DateTime<FixedOffset> {
        (self.time)() + chrono::Duration::milliseconds(self.clock_offset_ms)
    }

    /// The corrected time, with the correction re-read: another handle on the same diary may
    /// have learnt a new one.
    fn fresh_now(&mut self) -> Result<DateTime<FixedOffset>> {
        self.clock_offset_ms =
            self.conn
                .query_row("SELECT clock_offset_ms FROM sync_state", [], |r| r.get(0))?;
        Ok(self.now())
    }

    fn now_ms(&self) -> u64 {
        self.now().timestamp_millis().max(0) as u64
    }

    /// Runs `work` in one immediate transaction, committing only when it returns `Ok`. The
    /// in-memory clock and sequence are restored from the file when it fails, so a failed write
    /// leaves no trace.
    fn write<T>(
        &mut self,
        work: impl FnOnce(&mut Stamper, &Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let outcome = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            self.stamps.catch_up(&tx)?;
            let value = work(&mut self.stamps, &tx)?;
            tx.commit()?;
            Ok(value)
        })();
        if outcome.is_err() {
            self.reload_counters()?;
        }
        outcome
    }

    /// Records a new entry and returns it. The entry gets a new UUIDv7 unless the input names
    /// one, and `recorded_at` = now unless given (imports keep their original time).
    ///
    /// # Failure
    /// [`StoreError::Invalid`] names the field and the rule; nothing is written.
    pub fn log(&mut self, input: EntryInput) -> Result<Entry> {
        let now = self.fresh_now()?;
        let (id, patch) = new_entry_patch(input, now)?;
        self.write(|stamps, tx| insert_new_entry(stamps, tx, id, patch, now))?;
        self.get(id)
    }

    /// Records many new entries in one transaction: all of them, or none when any fails
    /// ([`StoreError::Import`] gives the position of the first bad one). `progress` is called
    /// with the number of entries done so far.
    pub fn import(
        &mut self,
        inputs: impl IntoIterator<Item = EntryInput>,
        mut progress: impl FnMut(usize),
    ) -> Result<ImportSummary> {
        let at = |index: usize| {
            move |e: StoreError| StoreError::Import {
                index,
                source: Box::new(e),
            }
        };
        let now = self.fresh_now()?;
        self.write(|stamps, tx| {
            let mut count = 0;
            for (index, input) in inputs.into_iter().enumerate() {
                let (id, patch) = new_entry_patch(input, now).map_err(at(index))?;
                insert_new_entry(stamps, tx, id, patch, now).map_err(at(index))?;
                count += 1;
                if count % 1024 == 0 {
                    progress(count);
                }
            }
            progress(count);
            Ok(ImportSummary { entries: count })
        })
    }

    /// Changes some fields of an entry; `null` clears one. Returns the entry as it now is.
    ///
    /// # Failure
    /// [`StoreError::NotFound`] for an unknown or deleted entry, [`StoreError::Invalid`] for a
    /// bad value; nothing is written either way.
    pub fn edit(&mut self, id: Uuid, input: EntryInput) -> Result<Entry> {
        let today = self.fresh_now()?.date_naive();
        let patch = input.into_edit_patch(today)?;
        if patch.is_empty() {
            return Err(heeldiary_core::ValidationError::new(
                "fields",
                "name at least one field to change",
            )
            .into());
        }
        self.change(id, patch)?;
        self.get(id)
    }

    /// Deletes an entry. The deletion is an operation like any other: history keeps every value,
    /// and sync carries the deletion to the other devices.
    pub fn delete(&mut self, id: Uuid) -> Result<()> {
        self.change(id, [(Field::Deleted, Value::Bool(true))].into())
    }

    fn change(&mut self, id: Uuid, patch: Patch) -> Result<()> {
        let now_ms = self.fresh_now()?.timestamp_millis().max(0) as u64;
        self.write(|stamps, tx| {
            let mut state = load_state(tx, id)?
                .filter(|s| !s.is_deleted())
                .ok_or(StoreError::NotFound(id))?;
            let op = stamps.stamp(id, patch, now_ms);
            state.apply(&op);
            insert_local_op(tx, &op)?;
            save_state(tx, id, &state)
        })
    }

    /// The current state of a live entry.
    ///
    /// # Failure
    /// [`StoreError::NotFound`] when there is no such entry or it was deleted.
    pub fn get(&self, id: Uuid) -> Result<Entry> {
        let entry = self.get_any(id)?;
        if entry.deleted {
            return Err(StoreError::NotFound(id));
        }
        Ok(entry)
    }

    /// An entry in any state, deleted ones included (`deleted: true`), for history views. An
    /// entry not complete yet (an edit pulled before the operation that creates it) is not
    /// found; one whose stored values do not fit is [`StoreError::Corrupt`].
    pub fn get_any(&self, id: Uuid) -> Result<Entry> {
        let state = load_state(&self.conn, id)?.ok_or(StoreError::NotFound(id))?;
        state.to_entry(id).map_err(|e| match e {
            EntryError::Incomplete { .. } => StoreError::NotFound(id),
            invalid => StoreError::corrupt(invalid),
        })
    }

    /// Live entries whose day lies in `from..=to` (either bound optional), by day then id.
    pub fn list(&self, from: Option<NaiveDate>, to: Option<NaiveDate>) -> Result<Vec<Entry>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT e.entry_id, {STATE_COLUMNS} FROM {STATE_JOIN}
             WHERE e.deleted = 0 AND e.day IS NOT NULL AND e.day >= ?1 AND e.day <= ?2
             ORDER BY e.day, e.entry_id"
        ))?;
        let from = from.map(|d| d.to_string()).unwrap_or_default();
        let to = to
            .map(|d| d.to_string())
            .unwrap_or_else(|| "9999-12-31".into());
        let rows = stmt.query_map(params![from, to], |r| {
            Ok((r.get::<_, String>(0)?, read_state(r, 1)?))
        })?;
        let mut entries = Vec::new();
        for row in rows {
            let (id, state) = row?;
            let id = Uuid::parse_str(&id).map_err(StoreError::corrupt)?;
            // An entry waiting for the operation that creates it is left out until it arrives.
            match state?.to_entry(id) {
                Ok(entry) => entries.push(entry),
                Err(e) if e.is_incomplete() => {}
                Err(invalid) => return Err(StoreError::corrupt(invalid)),
            }
        }
        Ok(entries)
    }

    /// Every operation on an entry, oldest first, with which of its values are still current.
    pub fn history(&self, id: Uuid) -> Result<Vec<HistoryChange>> {
        let state = load_state(&self.conn, id)?.ok_or(StoreError::NotFound(id))?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {OP_COLUMNS}, received_at FROM ops WHERE entry_id = ?1 ORDER BY hlc"
        ))?;
        let rows = stmt.query_map([id.to_string()], |r| {
            Ok((read_op(r)?, r.get::<_, Option<String>>(5)?))
        })?;
        let mut history = Vec::new();
        for row in rows {
            let (op, received_at) = row?;
            let op = op?;
            let changes = op
                .patch
                .into_iter()
                .map(|(field, value)| FieldChange {
                    field,
                    current: state.fields.get(&field).is_some_and(|f| f.hlc == op.hlc),
                    value,
                })
                .collect();
            history.push(HistoryChange {
                hlc: op.hlc,
                at: DateTime::from_timestamp_millis(op.hlc.wall_ms as i64).unwrap_or_default(),
                device_id: op.device_id,
                device_seq: op.device_seq,
                received_at: received_at
                    .map(|t| DateTime::parse_from_rfc3339(&t).map(|t| t.to_utc()))
                    .transpose()
                    .map_err(StoreError::corrupt)?,
                changes,
            });
        }
        Ok(history)
    }

    /// Recomputes every entry state from the operation log. The states are a cache of the log;
    /// this is how they are checked and repaired.
    pub fn rebuild_states(&mut self) -> Result<usize> {
        self.write(|_, tx| rebuild(tx, None))
    }
}

fn new_entry_patch(mut input: EntryInput, now: DateTime<FixedOffset>) -> Result<(Uuid, Patch)> {
    let id = input.id.take().unwrap_or_else(Uuid::now_v7);
    input.fields.entry(Field::RecordedAt).or_insert_with(|| {
        Value::String(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
    });
    Ok((id, input.into_patch(now.date_naive())?))
}

fn insert_new_entry(
    stamps: &mut Stamper,
    tx: &Transaction<'_>,
    id: Uuid,
    patch: Patch,
    now: DateTime<FixedOffset>,
) -> Result<()> {
    let op = stamps.stamp(id, patch, now.timestamp_millis().max(0) as u64);
    insert_local_op(tx, &op)?;
    if !insert_first_state(tx, &op)? {
        return Err(StoreError::AlreadyExists(id));
    }
    Ok(())
}

/// Records an entry whose only operation is `op`, leaving its state column empty: the state is
/// that operation's patch, so a bulk import or first pull writes each value once. Returns false
/// when the entry exists already.
fn insert_first_state(tx: &Connection, op: &Op) -> Result<bool> {
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
fn rebuild(tx: &Transaction<'_>, only: Option<&[Uuid]>) -> Result<usize> {
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
        let mut stmt =
            tx.prepare_cached(&format!("SELECT {OP_COLUMNS} FROM ops WHERE entry_id = ?1"))?;
        let mut state = EntryState::default();
        for op in stmt.query_map([id.to_string()], read_op)? {
            state.apply(&op??);
        }
        save_state(tx, *id, &state)?;
    }
    Ok(ids.len())
}

/// Columns [`read_op`] expects, in order; queries may select more after them.
const OP_COLUMNS: &str = "entry_id, device_id, device_seq, hlc, patch";

/// Reads an operation from a row that starts with [`OP_COLUMNS`].
fn read_op(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Op>> {
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
/// ([`Stamper::catch_up`] runs inside the same transaction), so a collision is a fault, never a
/// write to drop quietly.
fn insert_local_op(conn: &Connection, op: &Op) -> Result<()> {
    if insert_op(conn, op, None)? {
        Ok(())
    } else {
        Err(StoreError::corrupt(format!(
            "device sequence {} is taken",
            op.device_seq
        )))
    }
}

fn insert_op(conn: &Connection, op: &Op, pulled: Option<(u64, DateTime<Utc>)>) -> Result<bool> {
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

/// The stored state of an entry and, when the state column is empty, its only operation.
const STATE_COLUMNS: &str = "e.state, o.hlc, o.patch";
const STATE_JOIN: &str = "entries e LEFT JOIN ops o ON e.state IS NULL AND o.entry_id = e.entry_id";

/// Reads a row that starts with [`STATE_COLUMNS`].
fn read_state(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Result<EntryState>> {
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

fn load_state(conn: &Connection, id: Uuid) -> Result<Option<EntryState>> {
    conn.prepare_cached(&format!(
        "SELECT {STATE_COLUMNS} FROM {STATE_JOIN} WHERE e.entry_id = ?1"
    ))?
    .query_row([id.to_string()], |r| read_state(r, 0))
    .optional()?
    .transpose()
}

fn save_state(conn: &Connection, id: Uuid, state: &EntryState) -> Result<()> {
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
