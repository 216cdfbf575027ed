//! The two transactions that decide something (a group of pushes, an enrolment) and the codecs between
//! SQLite's text columns and values. What a push decides is [`PushPlan`]'s; these functions find
//! what it needs inside one immediate transaction and write its outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use heeldiary_core::wire::{PulledOp, PushResult};
use heeldiary_core::{EntryState, Op};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::secrets::SecretHash;
use crate::storage::{
    code_use, device_id_taken, from_i64, hash_from_bytes, parse_hlc, to_i64, CodeUse, NewDevice,
    PushAfter, PushPlan, StorageError, StoredIdentities,
};

/// An instant as stored: RFC 3339 in UTC with microseconds.
pub(super) fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn parse_time(text: &str) -> Result<DateTime<Utc>, StorageError> {
    heeldiary_core::calendar::parse_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StorageError::Internal(format!("stored time `{text}` unreadable: {e}")))
}

pub(super) fn parse_uuid(text: &str) -> Result<Uuid, StorageError> {
    Uuid::parse_str(text)
        .map_err(|e| StorageError::Internal(format!("stored id `{text}` unreadable: {e}")))
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StorageError> {
    serde_json::from_str(text)
        .map_err(|e| StorageError::Internal(format!("stored JSON unreadable: {e}")))
}

/// An entry state from its stored text.
pub(super) fn parse_state(text: &str) -> Result<EntryState, StorageError> {
    EntryState::from_stored(text)
        .map_err(|e| StorageError::Internal(format!("stored entry state unreadable: {e}")))
}

/// Rows of [`FEED_COLUMNS`](crate::storage::FEED_COLUMNS) as raw values; decoded outside
/// rusqlite's row callback.
pub(super) type OpRow = (i64, String, i64, String, String, String, String);

/// `device_id, role, label, enrolled_at, revoked_at` of a device row.
pub(super) type DeviceRow = (String, String, Option<String>, String, Option<String>);

pub(super) fn op_row(r: &Row<'_>) -> rusqlite::Result<OpRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

/// Decodes feed rows. The operations of one push share their writer and their arrival time, so
/// a page repeats both row after row: the last of each is kept and not parsed again.
#[derive(Default)]
pub(super) struct FeedDecoder {
    device: Option<(String, Uuid)>,
    received: Option<(String, DateTime<Utc>)>,
}

impl FeedDecoder {
    pub(super) fn pulled_op(&mut self, row: OpRow) -> Result<PulledOp, StorageError> {
        let (cursor, device_id, device_seq, entry_id, hlc, patch, received_at) = row;
        let device_id = match &self.device {
            Some((text, id)) if *text == device_id => *id,
            _ => {
                let id = parse_uuid(&device_id)?;
                self.device = Some((device_id, id));
                id
            }
        };
        let received_at = match &self.received {
            Some((text, at)) if *text == received_at => *at,
            _ => {
                let at = parse_time(&received_at)?;
                self.received = Some((received_at, at));
                at
            }
        };
        Ok(PulledOp {
            cursor: from_i64(cursor)?,
            received_at,
            op: Op {
                entry_id: parse_uuid(&entry_id)?,
                device_id,
                device_seq: from_i64(device_seq)?,
                hlc: parse_hlc(&hlc)?,
                patch: parse_json(&patch)?,
            },
        })
    }
}

/// Rows one multi-row statement of a push writes or reads: a first sync runs one statement per
/// this many operations or entries instead of one per each. 64 rows of the widest statement
/// bind 386 values, far below SQLite's limit.
const ROWS_PER_STATEMENT: usize = 64;

/// `rows` value lists for a multi-row INSERT, each `(?1, ` then `per_row` parameters of its own
/// (numbered on from `?3`), then `?2)`: the patient first and the arrival time last are shared
/// by every row.
fn value_rows(rows: usize, per_row: usize) -> String {
    let row_of = |row: usize| {
        let own: Vec<String> = (0..per_row)
            .map(|i| format!("?{}", 3 + row * per_row + i))
            .collect();
        format!("(?1, {}, ?2)", own.join(", "))
    };
    (0..rows).map(row_of).collect::<Vec<_>>().join(", ")
}

/// The text `make` gives for `rows` rows (1 to [`ROWS_PER_STATEMENT`]), made once for every
/// number of rows and kept in `texts`: the statement cache is looked up by text, for every chunk
/// of every push.
fn statement_text(
    texts: &'static OnceLock<Vec<String>>,
    make: fn(usize) -> String,
    rows: usize,
) -> &'static str {
    &texts.get_or_init(|| (1..=ROWS_PER_STATEMENT).map(make).collect())[rows - 1]
}

static INSERT_OPS: OnceLock<Vec<String>> = OnceLock::new();
static LOAD_STATES: OnceLock<Vec<String>> = OnceLock::new();
static SAVE_STATES: OnceLock<Vec<String>> = OnceLock::new();

/// `INSERT INTO ops` of `rows` rows; each binds its cursor, device, sequence, entry, stamp and
/// patch.
fn insert_ops_sql(rows: usize) -> String {
    format!(
        "INSERT INTO ops (patient_id, cursor, device_id, device_seq, entry_id, hlc, patch,
                          received_at)
         VALUES {}",
        value_rows(rows, 6)
    )
}

/// The stored state of up to `rows` entries of patient `?1`, named by `?2` on.
fn load_states_sql(rows: usize) -> String {
    let ids: Vec<String> = (0..rows).map(|row| format!("?{}", row + 2)).collect();
    format!(
        "SELECT entry_id, state FROM entries WHERE patient_id = ?1 AND entry_id IN ({})",
        ids.join(", ")
    )
}

/// Upsert of `rows` merged entry states; each row binds its entry, day, deleted flag and state.
fn save_states_sql(rows: usize) -> String {
    format!(
        "INSERT INTO entries (patient_id, entry_id, day, deleted, state, updated_at)
         VALUES {}
         ON CONFLICT (patient_id, entry_id) DO UPDATE SET
             day = excluded.day, deleted = excluded.deleted, state = excluded.state,
             updated_at = excluded.updated_at",
        value_rows(rows, 4)
    )
}

/// A push waiting for the next group commit, with where its answer goes.
pub(super) struct QueuedPush {
    pub patient_id: Uuid,
    pub after: Option<PushAfter>,
    pub ops: Vec<Op>,
    pub received_at: DateTime<Utc>,
    pub answer: oneshot::Sender<Result<Vec<PushResult>, StorageError>>,
}

/// Stores every push of `group` in one immediate transaction, each inside a savepoint of its
/// own, and answers each once the transaction is committed (durably, with `synchronous =
/// FULL`). A push that fails is rolled back to its savepoint and answered with its error; the
/// others commit. If the commit fails, every push is answered with that failure and nothing
/// was stored.
///
/// Why: every commit waits for the disk to sync the log, and pushes serialize on the one
/// connection; with many devices syncing at once, one sync per push would make each push wait
/// for the syncs of all queued before it. Grouped, the pushes that queue while one commit
/// syncs share the next one.
pub(super) fn push_group(conn: &mut Connection, group: Vec<QueuedPush>) {
    let outcome = (|| -> Result<Vec<Result<Vec<PushResult>, StorageError>>, StorageError> {
        // IMMEDIATE takes the write lock at once: pushes serialize and cursors commit in order.
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let [push] = group.as_slice() {
            // Alone, a push that fails rolls the whole transaction back: no savepoint needed
            // (a savepoint copies every page it changes, in case it is rolled back).
            let result = push_in(&tx, push);
            if result.is_ok() {
                tx.commit()?;
            }
            return Ok(vec![result]);
        }
        let mut results = Vec::with_capacity(group.len());
        for push in &group {
            let mut savepoint = tx.savepoint()?;
            let result = push_in(&savepoint, push);
            if result.is_err() {
                savepoint.rollback()?;
            }
            savepoint.commit()?;
            results.push(result);
        }
        tx.commit()?;
        Ok(results)
    })();
    match outcome {
        Ok(results) => {
            for (push, result) in group.into_iter().zip(results) {
                // A push whose request went away has no one to answer.
                let _ = push.answer.send(result);
            }
        }
        Err(failure) => {
            for push in group {
                let _ = push.answer.send(Err(same_failure(&failure)));
            }
        }
    }
}

/// `failure` again, for another push of the group it failed.
fn same_failure(failure: &StorageError) -> StorageError {
    match failure {
        StorageError::Unavailable(reason) => StorageError::Unavailable(reason.clone()),
        other => StorageError::Internal(other.to_string()),
    }
}

/// One push, inside a transaction the caller commits.
fn push_in(tx: &Connection, push: &QueuedPush) -> Result<Vec<PushResult>, StorageError> {
    let ops = push.ops.as_slice();
    let patient = push.patient_id.to_string();
    let received = time_text(push.received_at);
    let last_cursor: i64 = tx
        .prepare_cached("SELECT last_cursor FROM patients WHERE patient_id = ?1")?
        .query_row([&patient], |r| r.get(0))
        .optional()?
        .ok_or(StorageError::NotFound)?;
    let stored = stored_identities(tx, &patient, ops, push.after.as_ref())?;
    if let Some(after) = &push.after {
        after.is_met(&stored)?;
    }
    let plan = PushPlan::new(ops, last_cursor, &stored)?;
    let Some(new_last) = plan.last_cursor() else {
        return Ok(plan.results);
    };
    insert_ops(tx, &patient, &received, &plan.applied)?;
    let states = load_states(tx, &patient, &plan.entry_ids())?;
    save_states(tx, &patient, &received, &plan.merge(states))?;
    tx.prepare_cached("UPDATE patients SET last_cursor = ?2 WHERE patient_id = ?1")?
        .execute(params![patient, new_last])?;
    Ok(plan.results)
}

/// Appends `applied` (each operation with its cursor) to the patient's feed.
fn insert_ops(
    tx: &Connection,
    patient: &str,
    received: &str,
    applied: &[(i64, &Op)],
) -> Result<(), StorageError> {
    let mut ids = Uuid::encode_buffer();
    for chunk in applied.chunks(ROWS_PER_STATEMENT) {
        let mut insert =
            tx.prepare_cached(statement_text(&INSERT_OPS, insert_ops_sql, chunk.len()))?;
        insert.raw_bind_parameter(1, patient)?;
        insert.raw_bind_parameter(2, received)?;
        for (row, (cursor, op)) in chunk.iter().enumerate() {
            let first = 3 + row * 6;
            let patch = serde_json::to_string(&op.patch)
                .map_err(|e| StorageError::Internal(e.to_string()))?;
            insert.raw_bind_parameter(first, cursor)?;
            insert.raw_bind_parameter(
                first + 1,
                &*op.device_id.hyphenated().encode_lower(&mut ids),
            )?;
            insert.raw_bind_parameter(first + 2, to_i64(op.device_seq, "device_seq")?)?;
            insert
                .raw_bind_parameter(first + 3, &*op.entry_id.hyphenated().encode_lower(&mut ids))?;
            insert.raw_bind_parameter(first + 4, op.hlc.to_string())?;
            insert.raw_bind_parameter(first + 5, patch)?;
        }
        insert.raw_execute()?;
    }
    Ok(())
}

/// The stored states of those of `entry_ids` the patient has.
fn load_states(
    tx: &Connection,
    patient: &str,
    entry_ids: &[Uuid],
) -> Result<BTreeMap<Uuid, EntryState>, StorageError> {
    let mut ids = Uuid::encode_buffer();
    let mut states = BTreeMap::new();
    for chunk in entry_ids.chunks(ROWS_PER_STATEMENT) {
        let mut load =
            tx.prepare_cached(statement_text(&LOAD_STATES, load_states_sql, chunk.len()))?;
        load.raw_bind_parameter(1, patient)?;
        for (row, entry_id) in chunk.iter().enumerate() {
            load.raw_bind_parameter(row + 2, &*entry_id.hyphenated().encode_lower(&mut ids))?;
        }
        let mut rows = load.raw_query();
        while let Some(row) = rows.next()? {
            let entry_id: String = row.get(0)?;
            let state: String = row.get(1)?;
            states.insert(parse_uuid(&entry_id)?, parse_state(&state)?);
        }
    }
    Ok(states)
}

/// Writes the merged `states`, stamped as updated at `received`.
fn save_states(
    tx: &Connection,
    patient: &str,
    received: &str,
    states: &BTreeMap<Uuid, EntryState>,
) -> Result<(), StorageError> {
    let mut ids = Uuid::encode_buffer();
    let states: Vec<(&Uuid, &EntryState)> = states.iter().collect();
    for chunk in states.chunks(ROWS_PER_STATEMENT) {
        let mut save =
            tx.prepare_cached(statement_text(&SAVE_STATES, save_states_sql, chunk.len()))?;
        save.raw_bind_parameter(1, patient)?;
        save.raw_bind_parameter(2, received)?;
        for (row, (entry_id, state)) in chunk.iter().enumerate() {
            let first = 3 + row * 4;
            let json = state.to_stored();
            save.raw_bind_parameter(first, &*entry_id.hyphenated().encode_lower(&mut ids))?;
            save.raw_bind_parameter(first + 1, state.day())?;
            save.raw_bind_parameter(first + 2, state.is_deleted())?;
            save.raw_bind_parameter(first + 3, json)?;
        }
        save.raw_execute()?;
    }
    Ok(())
}

/// The operations of `ops`, and the one `after` names, that the patient's feed holds already,
/// by `(device_id, device_seq)`.
///
/// A batch is one device's run of sequence numbers, so its stored part is read with one range
/// scan of the unique index per device instead of a lookup per operation; a batch whose numbers
/// are sparse (a range much wider than the batch) is looked up operation by operation, so a
/// wide range never scans rows the batch does not name.
fn stored_identities(
    tx: &Connection,
    patient: &str,
    ops: &[Op],
    after: Option<&PushAfter>,
) -> Result<StoredIdentities, StorageError> {
    let mut wanted: BTreeMap<Uuid, BTreeSet<i64>> = BTreeMap::new();
    let named = ops
        .iter()
        .map(|op| (op.device_id, op.device_seq))
        .chain(after.map(|after| (after.device_id, after.device_seq)));
    for (device_id, device_seq) in named {
        wanted
            .entry(device_id)
            .or_default()
            .insert(to_i64(device_seq, "device_seq")?);
    }
    let mut stored = StoredIdentities::new();
    let mut range = tx.prepare_cached(
        "SELECT device_seq, entry_id, hlc FROM ops
         WHERE patient_id = ?1 AND device_id = ?2 AND device_seq BETWEEN ?3 AND ?4",
    )?;
    for (device_id, seqs) in &wanted {
        let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
            continue;
        };
        let device = device_id.to_string();
        let dense = (last - first) as u128 <= 2 * seqs.len() as u128;
        let spans: Vec<(i64, i64)> = if dense {
            vec![(first, last)]
        } else {
            seqs.iter().map(|&seq| (seq, seq)).collect()
        };
        let mut rows: Vec<(i64, String, String)> = Vec::new();
        for (from, to) in spans {
            let found = range.query_map(params![patient, device, from, to], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            for row in found {
                let row = row?;
                if seqs.contains(&row.0) {
                    rows.push(row);
                }
            }
        }
        for (seq, entry_id, hlc) in rows {
            stored.insert((*device_id, seq), (parse_uuid(&entry_id)?, hlc));
        }
    }
    Ok(stored)
}

/// [`Storage::enrol`](crate::storage::Storage::enrol) in one immediate transaction.
pub(super) fn enrol_tx(
    conn: &mut Connection,
    code_hash: SecretHash,
    device: &NewDevice,
    now: DateTime<Utc>,
) -> Result<Uuid, StorageError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let code: Option<(String, String, Option<String>, Option<String>)> = tx
        .query_row(
            "SELECT patient_id, expires_at, used_at, used_by FROM enrolment_codes
             WHERE code_hash = ?1",
            [code_hash.as_bytes().as_slice()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((patient, expires_at, used_at, used_by)) = code else {
        return Err(StorageError::InvalidCode);
    };
    let device_id = device.device_id.to_string();
    let used_at = used_at.as_deref().map(parse_time).transpose()?;
    match code_use(
        parse_time(&expires_at)?,
        used_at,
        used_by.as_deref(),
        &device_id,
        now,
    ) {
        CodeUse::Refuse => return Err(StorageError::InvalidCode),
        CodeUse::Repeat => {
            let stored: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT token_hash FROM devices
                     WHERE patient_id = ?1 AND device_id = ?2 AND revoked_at IS NULL",
                    params![patient, device_id],
                    |r| r.get(0),
                )
                .optional()?;
            let same_caller = stored
                .map(hash_from_bytes)
                .transpose()?
                .is_some_and(|hash| hash.matches(&device.token_hash));
            return if same_caller {
                parse_uuid(&patient)
            } else {
                Err(StorageError::InvalidCode)
            };
        }
        CodeUse::First => {}
    }
    let now = time_text(now);
    if !register_device(&tx, &patient, device, &now)? {
        // The device enrolled before and never heard the answer; it proved it holds the same
        // secret, so this fresh code confirms that enrolment.
        tracing::info!(device_id, "enrolment confirmed by a fresh code");
    }
    tx.execute(
        "UPDATE enrolment_codes SET used_at = ?2, used_by = ?3 WHERE code_hash = ?1",
        params![code_hash.as_bytes().as_slice(), now, device_id],
    )?;
    tx.commit()?;
    parse_uuid(&patient)
}

/// Registers `device` for `patient`, unless the very same device is registered already (same
/// patient, same token hash, not revoked): then it returns `false` and changes nothing. A
/// device id registered otherwise (another token, another patient, revoked) is a conflict.
pub(super) fn register_device(
    tx: &Connection,
    patient: &str,
    device: &NewDevice,
    now: &str,
) -> Result<bool, StorageError> {
    let device_id = device.device_id.to_string();
    let existing: Option<(String, Vec<u8>, Option<String>)> = tx
        .prepare_cached(
            "SELECT patient_id, token_hash, revoked_at FROM devices WHERE device_id = ?1",
        )?
        .query_row([&device_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    if let Some((owner, hash, revoked_at)) = existing {
        let same_device = owner == patient
            && revoked_at.is_none()
            && hash_from_bytes(hash)?.matches(&device.token_hash);
        return if same_device {
            Ok(false)
        } else {
            Err(device_id_taken())
        };
    }
    tx.execute(
        "INSERT INTO devices (patient_id, device_id, token_hash, role, label, enrolled_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            patient,
            device_id,
            device.token_hash.as_bytes().as_slice(),
            device.role.as_str(),
            device.label,
            now
        ],
    )?;
    Ok(true)
}
