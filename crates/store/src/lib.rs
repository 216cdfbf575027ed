//! The local diary store: one SQLite file per device, holding the field-level operation log from
//! which entry states are merged when read.
//!
//! This is the API a mobile shell embeds (through an FFI layer) and the `heeldiary` CLI calls:
//! open, log, edit, delete, get, list by day range, history, import many, plus the few calls the
//! sync client needs. Every change is written as an operation stamped with the device's hybrid
//! logical clock; an entry's state is the per-field merge of its operations (see
//! [`heeldiary_core::EntryState`]), so local edits and pulled ones go through one rule.
//!
//! It depends on `heeldiary-core` and rusqlite only; it must never depend on the network, the
//! server or an async runtime. Its errors speak to whatever app embeds it: they never tell a
//! user to run a command (the CLI adds its own advice when it prints them).
//!
//! Inside, the diary API (this file) and the sync calls (`sync.rs`) both sit on the row-level
//! module `db.rs` (the operation log and its rows, entry states merged from it); `codec.rs`
//! gives patches their compact binary form, `stamper.rs` hands out clock stamps and sequence
//! numbers, `schema.rs` opens and migrates the file.
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

#[cfg(test)]
mod carry_forward_tests;
mod cipher;
mod codec;
mod db;
mod error;
mod schema;
mod stamper;
mod sync;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Local, NaiveDate, Utc};
use heeldiary_core::{Entry, EntryError, EntryInput, Field, Hlc, Patch};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

pub use cipher::{encryption_available, sqlite_engine, DiaryKey, MIN_SECRET_BYTES};
pub use error::{Result, StoreError};
pub use schema::SCHEMA_VERSION;
pub use sync::{Enrolment, RemoteApply, ResearchConsent, SyncState};

use db::{entry_exists, insert_local_op, load_state, DeviceNumbers};
use stamper::Stamper;

/// Where the store reads the time. The default is the device clock with its local offset.
pub type TimeSource = Arc<dyn Fn() -> DateTime<FixedOffset> + Send + Sync>;

/// One device's diary.
pub struct Store {
    conn: Connection,
    stamps: Stamper,
    clock_offset_ms: i64,
    time: TimeSource,
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
    /// [`StoreError::NewerSchema`] for a newer file, [`StoreError::Io`] when its folder cannot be
    /// created, [`StoreError::Sqlite`] when the file cannot be opened or is not a database.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_key(path, None)
    }

    /// Opens (creating if needed) the diary at `path`, encrypted with `key` (`None`: a plain
    /// diary). The key is checked before anything is written.
    ///
    /// # Failure
    /// As [`Store::open`], and [`StoreError::WrongKey`] when the key does not open the file,
    /// [`StoreError::KeyRequired`] for an encrypted file opened without a key,
    /// [`StoreError::NotEncrypted`] for a plain file opened with one,
    /// [`StoreError::EncryptionUnavailable`] when this build cannot encrypt. The file is left
    /// untouched in each case.
    pub fn open_with_key(path: impl AsRef<Path>, key: Option<&DiaryKey>) -> Result<Self> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
                path: dir.to_owned(),
                error: e,
            })?;
        }
        Self::init(cipher::open_connection(path, key)?)
    }

    /// Encrypts the plain diary at `path` with `key`, in place: every entry, its history and the
    /// sync state are kept. A crash half-way leaves the plain file or the encrypted one, never
    /// neither. No other handle may have the diary open meanwhile.
    pub fn encrypt_file(path: impl AsRef<Path>, key: &DiaryKey) -> Result<()> {
        let path = path.as_ref();
        drop(Self::open(path)?);
        cipher::rewrite(path, None, Some(key))
    }

    /// Changes the key of the encrypted diary at `path` from `old` to `new`, like
    /// [`Store::encrypt_file`]: all or nothing, and the old key no longer opens it.
    pub fn rekey_file(path: impl AsRef<Path>, old: &DiaryKey, new: &DiaryKey) -> Result<()> {
        let path = path.as_ref();
        drop(Self::open_with_key(path, Some(old))?);
        cipher::rewrite(path, Some(old), Some(new))
    }

    /// A diary in memory, gone when dropped; for tests and previews.
    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        schema::prepare(&conn)?;
        schema::migrate(&mut conn, SCHEMA_VERSION)?;
        let device_id = db::ensure_device(&conn)?;
        let mut store = Store {
            conn,
            stamps: Stamper::new(device_id),
            clock_offset_ms: 0,
            time: Arc::new(|| Local::now().fixed_offset()),
        };
        store.reload_counters()?;
        Ok(store)
    }

    fn reload_counters(&mut self) -> Result<()> {
        self.stamps = Stamper::new(self.stamps.device_id());
        self.stamps.catch_up(&self.conn)?;
        self.clock_offset_ms = db::clock_offset_ms(&self.conn)?;
        Ok(())
    }

    /// Writes a consistent copy of the whole diary to a new file at `path`, as a phone backup
    /// does: the copy opens as a diary of its own. (Restored and synced beside the original, it
    /// finds that it is a copy and takes a new device identity.)
    ///
    /// # Failure
    /// [`StoreError::Sqlite`] if `path` exists or cannot be written.
    pub fn back_up_to(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref().to_string_lossy().into_owned();
        self.conn.execute("VACUUM INTO ?1", [path])?;
        Ok(())
    }

    /// Replaces where the store reads the time (tests, or a shell with its own clock).
    pub fn set_time_source(&mut self, time: TimeSource) {
        self.time = time;
    }

    /// This device's id, which stamps its operations.
    pub fn device_id(&self) -> Uuid {
        self.stamps.device_id()
    }

    /// The device's time, corrected by the offset learnt from the server.
    pub fn now(&self) -> DateTime<FixedOffset> {
        (self.time)() + chrono::Duration::milliseconds(self.clock_offset_ms)
    }

    /// The corrected time, with the correction re-read: another handle on the same diary may
    /// have learnt a new one.
    fn fresh_now(&mut self) -> Result<DateTime<FixedOffset>> {
        self.clock_offset_ms = db::clock_offset_ms(&self.conn)?;
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
            self.stamps.save(&tx)?;
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
        self.write(|stamps, tx| {
            insert_new_entry(stamps, tx, &mut DeviceNumbers::default(), id, patch, now)
        })?;
        self.get(id.id())
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
            let mut numbers = DeviceNumbers::default();
            for (index, input) in inputs.into_iter().enumerate() {
                let (id, patch) = new_entry_patch(input, now).map_err(at(index))?;
                insert_new_entry(stamps, tx, &mut numbers, id, patch, now).map_err(at(index))?;
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
            load_state(tx, id)?
                .filter(|s| !s.is_deleted())
                .ok_or(StoreError::NotFound(id))?;
            let op = stamps.stamp(id, patch, now_ms);
            insert_local_op(tx, &mut DeviceNumbers::default(), &op)
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
        self.list_where(from, to, false)
    }

    /// Like [`Store::list`], with the deleted entries too (`deleted: true`), for history views.
    pub fn list_including_deleted(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<Entry>> {
        self.list_where(from, to, true)
    }

    fn list_where(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        include_deleted: bool,
    ) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        db::for_each_state(&self.conn, |id, state| {
            if state.is_deleted() && !include_deleted {
                return Ok(());
            }
            // An entry waiting for the operation that creates it is left out until it arrives.
            match state.to_entry(id) {
                Ok(entry) => {
                    if from.is_none_or(|from| entry.day >= from)
                        && to.is_none_or(|to| entry.day <= to)
                    {
                        entries.push(entry);
                    }
                    Ok(())
                }
                Err(e) if e.is_incomplete() => Ok(()),
                Err(invalid) => Err(StoreError::corrupt(invalid)),
            }
        })?;
        entries.sort_by_key(|entry| (entry.day, entry.id));
        Ok(entries)
    }

    /// Every operation on an entry, oldest first, with which of its values are still current.
    pub fn history(&self, id: Uuid) -> Result<Vec<HistoryChange>> {
        let ops = db::ops_of(&self.conn, id)?;
        if ops.is_empty() {
            return Err(StoreError::NotFound(id));
        }
        let mut state = heeldiary_core::EntryState::default();
        for (op, _) in &ops {
            state.apply(op);
        }
        let mut history = Vec::new();
        for (op, received_at) in ops {
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
                received_at,
                changes,
            });
        }
        Ok(history)
    }

    /// Reads every entry state from the operation log, checking that each one merges, and
    /// returns how many entries the log holds. States are never stored apart from the log (an
    /// entry's state is the merge of its operations, read when asked), so there is nothing to
    /// repair; a log that does not read is [`StoreError::Corrupt`].
    pub fn rebuild_states(&mut self) -> Result<usize> {
        let mut entries = 0;
        db::for_each_state(&self.conn, |_, _| {
            entries += 1;
            Ok(())
        })?;
        Ok(entries)
    }
}

/// The id of a new entry: the one its input names, or a fresh one.
#[derive(Debug, Clone, Copy)]
enum NewId {
    Named(Uuid),
    Fresh(Uuid),
}

impl NewId {
    fn id(self) -> Uuid {
        match self {
            NewId::Named(id) | NewId::Fresh(id) => id,
        }
    }
}

fn new_entry_patch(mut input: EntryInput, now: DateTime<FixedOffset>) -> Result<(NewId, Patch)> {
    let id = match input.id.take() {
        Some(named) => NewId::Named(named),
        None => NewId::Fresh(Uuid::now_v7()),
    };
    input.fields.entry(Field::RecordedAt).or_insert_with(|| {
        Value::String(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
    });
    Ok((id, input.into_patch(now.date_naive())?))
}

fn insert_new_entry(
    stamps: &mut Stamper,
    tx: &Transaction<'_>,
    numbers: &mut DeviceNumbers,
    id: NewId,
    patch: Patch,
    now: DateTime<FixedOffset>,
) -> Result<()> {
    // A fresh UUIDv7 (74 random bits beside the time) names nothing in the file yet: only a
    // named id is looked up.
    if let NewId::Named(id) = id {
        if entry_exists(tx, id)? {
            return Err(StoreError::AlreadyExists(id));
        }
    }
    let op = stamps.stamp(id.id(), patch, now.timestamp_millis().max(0) as u64);
    insert_local_op(tx, numbers, &op)
}

#[cfg(test)]
mod full_and_read_only_disk {
    //! A full disk (the file held to its present size with `max_page_count`) and a file that
    //! cannot be written (`query_only`): writes fail with a clear error, nothing is corrupted or
    //! half-written, and the next run works once there is room.

    use super::*;

    fn entry(day: u32, note: &str) -> EntryInput {
        serde_json::from_value(serde_json::json!({
            "day": format!("2026-10-{day:02}"),
            "first_step_pain": 3,
            "note": note,
        }))
        .unwrap()
    }

    fn integrity(store: &Store) -> String {
        store
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_full_disk_refuses_log_and_import_cleanly_and_the_next_run_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("diary.sqlite3");
        let mut store = Store::open(&path).unwrap();
        store.log(entry(1, "before")).unwrap();
        let pages: u64 = store
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        store
            .conn
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
        let note = "x".repeat(1_900);
        let mut logged = 1;
        let full = loop {
            match store.log(entry(2, &note)) {
                Ok(_) => logged += 1,
                Err(e) => break e,
            }
            assert!(logged < 10_000, "the page limit never struck");
        };
        assert!(matches!(full, StoreError::DiskFull), "{full:?}");
        assert!(full.to_string().contains("full"), "{full}");
        let import = store.import((0..50).map(|i| entry(3, &format!("{i}{note}"))), |_| {});
        assert!(
            matches!(&import, Err(StoreError::Import { source, .. }) if matches!(**source, StoreError::DiskFull))
                || matches!(import, Err(StoreError::DiskFull)),
            "{import:?}"
        );
        assert_eq!(store.list(None, None).unwrap().len(), logged);
        assert_eq!(integrity(&store), "ok");
        drop(store);
        // Room again (a new run has no page limit): the diary works and holds what it held.
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.list(None, None).unwrap().len(), logged);
        store.log(entry(4, "after")).unwrap();
        assert_eq!(store.unpushed(100_000).unwrap().len(), logged + 1);
    }

    #[test]
    fn a_read_only_diary_refuses_writes_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("diary.sqlite3");
        let mut store = Store::open(&path).unwrap();
        store.log(entry(1, "kept")).unwrap();
        store.conn.pragma_update(None, "query_only", true).unwrap();
        let refused = store.log(entry(2, "lost")).unwrap_err();
        assert!(matches!(refused, StoreError::ReadOnly), "{refused:?}");
        assert!(refused.to_string().contains("read-only"), "{refused}");
        assert_eq!(store.list(None, None).unwrap().len(), 1);
        drop(store);
        let mut store = Store::open(&path).unwrap();
        store.log(entry(2, "written")).unwrap();
        assert_eq!(store.list(None, None).unwrap().len(), 2);
    }
}
