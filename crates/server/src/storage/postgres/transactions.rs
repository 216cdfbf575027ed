//! The two transactions that decide something (a push, an enrolment) and the codecs between
//! rows and values. What a push decides is [`PushPlan`]'s; these functions find what it needs
//! under the patient's lock and write its outcome in bulk: one INSERT (or, for many, a binary
//! COPY) of the new rows, one UPDATE of the entries that were stored already. A day's push takes
//! two round trips: BEGIN with the reads, the writes with COMMIT.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{ClientWrapper, Transaction};
use futures_util::FutureExt;
use heeldiary_core::wire::{PulledOp, PushResult};
use heeldiary_core::{EntryState, Op, Patch, Stored};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, ToSql, Type};
use tokio_postgres::{IsolationLevel, Row, Statement};
use uuid::Uuid;

use super::faults::Fault;
use super::PostgresStorage;
use crate::secrets::SecretHash;
use crate::storage::{
    code_use, device_id_taken, from_i64, hash_from_bytes, parse_hlc, to_i64, CodeUse, NewDevice,
    PushAfter, PushPlan, StorageError, StoredIdentities,
};

/// First key of the two-key advisory lock taken per device id while enrolling. Device ids are
/// unique across patients, which no per-patient unique index can enforce on a sharded table.
const ENROL_LOCK: i32 = 0x6865_656c;

impl PostgresStorage {
    /// One attempt at [`Storage::push`](crate::storage::Storage::push), in one transaction.
    pub(super) async fn push_once(
        &self,
        patient_id: Uuid,
        after: Option<PushAfter>,
        ops: &[Op],
        received_at: DateTime<Utc>,
    ) -> Result<Vec<PushResult>, Fault> {
        // The operation `after` names is looked up with the batch's own.
        let named: Vec<(Uuid, i64)> = ops
            .iter()
            .map(|op| (op.device_id, op.device_seq))
            .chain(after.map(|after| (after.device_id, after.device_seq)))
            .map(|(device_id, seq)| Ok((device_id, to_i64(seq, "device_seq")?)))
            .collect::<Result<_, StorageError>>()?;
        let seqs: Vec<i64> = named.iter().map(|(_, seq)| *seq).collect();
        // Each device's span of sequence numbers in the batch.
        let mut spans: BTreeMap<Uuid, (i64, i64)> = BTreeMap::new();
        for &(device_id, seq) in &named {
            let span = spans.entry(device_id).or_insert((seq, seq));
            *span = (span.0.min(seq), span.1.max(seq));
        }
        let devices: Vec<Uuid> = spans.keys().copied().collect();
        let (lows, highs): (Vec<i64>, Vec<i64>) = spans.values().copied().unzip();
        let entry_ids: Vec<Uuid> = ops
            .iter()
            .map(|op| op.entry_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.on_connection(async |client| {
            let client: &ClientWrapper = client;
            // Every statement is prepared (once per connection, then cached) before the
            // transaction: the statements sent together below must each go out as soon as they
            // are polled, and in the order they are written.
            let lock = client
                .prepare_cached(
                    "SELECT last_cursor FROM patients WHERE patient_id = $1
                     FOR NO KEY UPDATE",
                )
                .await?;
            // One range scan of the unique index per device of the batch (every push is one
            // device's run of sequence numbers), keeping the batch's own numbers. Bounded by
            // the range, the plan stays on that index whatever the statistics say; matched by
            // the list of numbers alone, a table whose statistics predate its growth was read
            // row by row for the patient, push after push.
            let find_stored = client
                .prepare_cached(
                    "SELECT o.device_id, o.device_seq, o.entry_id, o.hlc
                     FROM unnest($2::uuid[], $3::bigint[], $4::bigint[]) AS r (device_id, low, high)
                     JOIN ops o ON o.patient_id = $1 AND o.device_id = r.device_id
                          AND o.device_seq BETWEEN r.low AND r.high
                     WHERE o.device_seq = ANY ($5)",
                )
                .await?;
            let load = client.prepare_cached(LOAD_STATES).await?;
            let writes = Writes::prepare(client).await?;
            // BEGIN and three statements sent at once and run in order: the lock on the
            // counter row serializes this patient's pushes until commit, and under READ
            // COMMITTED each later statement takes its snapshot only once the lock is held, so
            // the duplicate check and the states read are exact. (FOR NO KEY UPDATE, the lock an
            // UPDATE of the counter takes anyway, leaves the foreign-key checks of other writers
            // to this patient unblocked.) The states of every entry of the batch are read, a
            // superset of those the new operations touch, so that nothing waits for the plan.
            let lock_params: [&(dyn ToSql + Sync); 1] = [&patient_id];
            let find_params: [&(dyn ToSql + Sync); 5] =
                [&patient_id, &devices, &lows, &highs, &seqs];
            let load_params: [&(dyn ToSql + Sync); 2] = [&patient_id, &entry_ids];
            let tx = PipelinedTransaction::new(client);
            // Biased: polled in the order written, each statement goes out on its first poll.
            let ((), locked, stored, states) = tokio::try_join!(
                biased;
                tx.begin(),
                client.query_opt(&lock, &lock_params),
                client.query(&find_stored, &find_params),
                client.query(&load, &load_params),
            )?;
            let last_cursor: i64 = locked.ok_or(StorageError::NotFound)?.try_get(0)?;
            let stored: StoredIdentities = stored
                .iter()
                .map(|r| {
                    Ok((
                        (r.try_get(0)?, r.try_get(1)?),
                        (r.try_get(2)?, r.try_get(3)?),
                    ))
                })
                .collect::<Result<_, tokio_postgres::Error>>()?;
            if let Some(after) = &after {
                after.is_met(&stored)?;
            }
            let plan = PushPlan::new(ops, last_cursor, &stored)?;
            let Some(new_last) = plan.last_cursor() else {
                tx.commit().await?;
                return Ok(plan.results);
            };
            let stored_states = decode_states(&states)?;
            let stored_entries: BTreeSet<Uuid> = stored_states.keys().copied().collect();
            let states = plan.merge(stored_states);
            let (changed, new): (Vec<_>, Vec<_>) = states
                .iter()
                .partition(|(id, _)| stored_entries.contains(id));
            let advance_params: [&(dyn ToSql + Sync); 2] = [&patient_id, &new_last];
            // The writes go out together too: the connection runs them one after another (a
            // copy holds it until its last row), and none waits for another's answer first.
            // Without a copy, every write goes out as it is polled, so the COMMIT follows them
            // in the same round trip; a write that fails makes PostgreSQL roll it all back.
            let no_copy = plan.applied.len() <= ROWS_PER_INSERT && new.len() <= ROWS_PER_INSERT;
            tokio::try_join!(
                biased;
                insert_ops(client, &writes.insert_ops, patient_id, &plan, received_at),
                insert_states(client, &writes.insert_states, patient_id, &new, received_at),
                write_states(client, &writes.update_states, patient_id, &changed, received_at),
                async { Ok(client.execute(&writes.advance, &advance_params).await?) },
                // Without a copy the COMMIT goes out right behind the writes.
                async {
                    if no_copy {
                        tx.commit().await
                    } else {
                        Ok(())
                    }
                },
            )?;
            if !no_copy {
                tx.commit().await?;
            }
            Ok(plan.results)
        })
        .await
    }

    /// One attempt at [`Storage::enrol`](crate::storage::Storage::enrol), in one transaction.
    pub(super) async fn enrol_once(
        &self,
        code_hash: SecretHash,
        device: &NewDevice,
        now: DateTime<Utc>,
    ) -> Result<Uuid, Fault> {
        self.in_transaction(IsolationLevel::ReadCommitted, async |tx| {
            // Locking the code row makes a second enrolment with the same code wait, then see
            // it used.
            let code = tx
                .query_opt(
                    "SELECT patient_id, expires_at, used_at, used_by FROM enrolment_codes
                     WHERE code_hash = $1 FOR UPDATE",
                    &[&code_hash.as_bytes().as_slice()],
                )
                .await?;
            let Some(code) = code else {
                return Err(StorageError::InvalidCode.into());
            };
            let patient: Uuid = code.try_get(0)?;
            let expires_at: DateTime<Utc> = code.try_get(1)?;
            let used_at: Option<DateTime<Utc>> = code.try_get(2)?;
            let used_by: Option<Uuid> = code.try_get(3)?;
            let used_by = used_by.map(|id| id.to_string());
            match code_use(
                expires_at,
                used_at,
                used_by.as_deref(),
                &device.device_id.to_string(),
                now,
            ) {
                CodeUse::Refuse => return Err(StorageError::InvalidCode.into()),
                CodeUse::Repeat => {
                    let stored = tx
                        .query_opt(
                            "SELECT token_hash FROM devices
                             WHERE patient_id = $1 AND device_id = $2 AND revoked_at IS NULL",
                            &[&patient, &device.device_id],
                        )
                        .await?;
                    let same_caller = match stored {
                        Some(row) => hash_from_bytes(row.try_get(0)?)?.matches(&device.token_hash),
                        None => false,
                    };
                    return if same_caller {
                        Ok(patient)
                    } else {
                        Err(StorageError::InvalidCode.into())
                    };
                }
                CodeUse::First => {}
            }
            if !register_device(tx, patient, device, now).await? {
                // The device enrolled before and never heard the answer; it proved it holds
                // the same secret, so this fresh code confirms that enrolment.
                tracing::info!(device_id = %device.device_id, "enrolment confirmed by a fresh code");
            }
            tx.execute(
                "UPDATE enrolment_codes SET used_at = $2, used_by = $3 WHERE code_hash = $1",
                &[&code_hash.as_bytes().as_slice(), &now, &device.device_id],
            )
            .await?;
            Ok(patient)
        })
        .await
    }
}

/// Registers `device` for `patient`, unless the very same device is registered already (same
/// patient, same token hash, not revoked): then it returns `false` and changes nothing. A device
/// id registered otherwise (another token, another patient, revoked) is a conflict.
pub(super) async fn register_device(
    tx: &Transaction<'_>,
    patient: Uuid,
    device: &NewDevice,
    now: DateTime<Utc>,
) -> Result<bool, Fault> {
    // Device ids are unique across patients, which no per-patient unique index can enforce on
    // a sharded table: the advisory lock makes the check and the insert one step.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2::uuid::text))",
        &[&ENROL_LOCK, &device.device_id],
    )
    .await?;
    let existing = tx
        .query_opt(
            "SELECT patient_id, token_hash, revoked_at IS NOT NULL FROM devices
             WHERE device_id = $1 LIMIT 1",
            &[&device.device_id],
        )
        .await?;
    if let Some(row) = existing {
        let owner: Uuid = row.try_get(0)?;
        let revoked: bool = row.try_get(2)?;
        let same_device = owner == patient
            && !revoked
            && hash_from_bytes(row.try_get(1)?)?.matches(&device.token_hash);
        return if same_device {
            Ok(false)
        } else {
            Err(device_id_taken().into())
        };
    }
    tx.execute(
        "INSERT INTO devices (patient_id, device_id, token_hash, role, label, enrolled_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &patient,
            &device.device_id,
            &device.token_hash.as_bytes().as_slice(),
            &device.role.as_str(),
            &device.label,
            &now,
        ],
    )
    .await?;
    Ok(true)
}

/// Pushes of up to this many new operations (a day's), and of up to this many entries new to
/// the server, are stored with one INSERT each; larger ones with a COPY.
const ROWS_PER_INSERT: usize = 64;

/// The statements of a push's writes, prepared before its transaction begins.
struct Writes {
    insert_ops: Statement,
    insert_states: Statement,
    update_states: Statement,
    advance: Statement,
}

impl Writes {
    async fn prepare(client: &ClientWrapper) -> Result<Self, Fault> {
        Ok(Self {
            // Same columns as the COPY, and no conflict handling either: see `insert_ops`.
            insert_ops: client
                .prepare_cached(
                    "INSERT INTO ops (patient_id, cursor, device_id, device_seq, entry_id, hlc,
                                      patch, received_at)
                     SELECT $1, t.c, t.d, t.s, t.e, t.h, t.p, $2
                     FROM unnest($3::int8[], $4::uuid[], $5::int8[], $6::uuid[], $7::text[],
                                 $8::json[]) AS t (c, d, s, e, h, p)",
                )
                .await?,
            insert_states: client
                .prepare_cached(
                    "INSERT INTO entries (patient_id, entry_id, day, deleted, state, updated_at)
                     SELECT $1, t.e, t.d, t.x, t.s, $2
                     FROM unnest($3::uuid[], $4::date[], $5::boolean[], $6::json[])
                          AS t (e, d, x, s)",
                )
                .await?,
            update_states: client
                .prepare_cached(
                    "UPDATE entries SET day = t.d, deleted = t.x, state = t.s, updated_at = $2
                     FROM unnest($3::uuid[], $4::date[], $5::boolean[], $6::json[])
                          AS t (e, d, x, s)
                     WHERE entries.patient_id = $1 AND entries.entry_id = t.e",
                )
                .await?,
            advance: client
                .prepare_cached("UPDATE patients SET last_cursor = $2 WHERE patient_id = $1")
                .await?,
        })
    }
}

/// A READ COMMITTED transaction whose BEGIN goes out with its first statements and whose COMMIT
/// may go out with its last ones, instead of taking a round trip each. Dropped before it
/// committed (a statement failed, or the request was cancelled), it queues a ROLLBACK ahead of
/// anything the connection's next user sends, as tokio-postgres's own transactions do.
struct PipelinedTransaction<'a> {
    client: &'a ClientWrapper,
    committed: AtomicBool,
}

impl<'a> PipelinedTransaction<'a> {
    fn new(client: &'a ClientWrapper) -> Self {
        Self {
            client,
            committed: AtomicBool::new(false),
        }
    }

    /// Sends BEGIN; the statements polled after it run inside the transaction.
    async fn begin(&self) -> Result<(), tokio_postgres::Error> {
        self.client
            .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await
    }

    /// Sends COMMIT, which runs after every statement polled before it. After a statement of
    /// the transaction failed, PostgreSQL rolls back instead; that statement reports the
    /// failure.
    async fn commit(&self) -> Result<(), Fault> {
        self.client.batch_execute("COMMIT").await?;
        self.committed.store(true, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for PipelinedTransaction<'_> {
    fn drop(&mut self) {
        if !self.committed.load(Ordering::Relaxed) {
            // The first poll queues the statement on the connection; its answer is not needed.
            let _ = self.client.batch_execute("ROLLBACK").now_or_never();
        }
    }
}

/// Stores the plan's new operations. A large push goes with one binary COPY: no statement to
/// plan and no arrays to unpack, the rows go straight into the table. A small one goes with one
/// prepared INSERT of arrays: a COPY waits for the server to accept it before its rows go, a
/// round trip of its own, while the INSERT is sent with the statements after it.
async fn insert_ops(
    client: &ClientWrapper,
    insert: &Statement,
    patient_id: Uuid,
    plan: &PushPlan<'_>,
    received_at: DateTime<Utc>,
) -> Result<(), Fault> {
    if plan.applied.len() <= ROWS_PER_INSERT {
        return insert_few_ops(client, insert, patient_id, plan, received_at).await;
    }
    // No conflict handling: the duplicate check ran under the patient's lock, so a clash here
    // is a fault to report, not a repeat to hide (hiding it would leave a gap in the cursors).
    let rows = binary_copy(
        client,
        "ops (patient_id, cursor, device_id, device_seq, entry_id, hlc, patch, received_at)",
        &[
            Type::UUID,
            Type::INT8,
            Type::UUID,
            Type::INT8,
            Type::UUID,
            Type::TEXT,
            Type::JSON,
            Type::TIMESTAMPTZ,
        ],
    )
    .await?;
    let mut rows = pin!(rows);
    for (cursor, op) in &plan.applied {
        let seq = to_i64(op.device_seq, "device_seq")?;
        let stamp = op.hlc.to_string();
        rows.as_mut()
            .write(&[
                &patient_id,
                cursor,
                &op.device_id,
                &seq,
                &op.entry_id,
                &stamp,
                &Json(&op.patch),
                &received_at,
            ])
            .await?;
    }
    rows.finish().await?;
    Ok(())
}

/// [`insert_ops`] of a small push: one INSERT of the operations as arrays, column by column.
async fn insert_few_ops(
    client: &ClientWrapper,
    insert: &Statement,
    patient_id: Uuid,
    plan: &PushPlan<'_>,
    received_at: DateTime<Utc>,
) -> Result<(), Fault> {
    let applied = &plan.applied;
    let cursors: Vec<i64> = applied.iter().map(|(cursor, _)| *cursor).collect();
    let devices: Vec<Uuid> = applied.iter().map(|(_, op)| op.device_id).collect();
    let seqs: Vec<i64> = applied
        .iter()
        .map(|(_, op)| to_i64(op.device_seq, "device_seq"))
        .collect::<Result<_, _>>()?;
    let entries: Vec<Uuid> = applied.iter().map(|(_, op)| op.entry_id).collect();
    let stamps: Vec<String> = applied.iter().map(|(_, op)| op.hlc.to_string()).collect();
    let patches: Vec<Json<&Patch>> = applied.iter().map(|(_, op)| Json(&op.patch)).collect();
    client
        .execute(
            insert,
            &[
                &patient_id,
                &received_at,
                &cursors,
                &devices,
                &seqs,
                &entries,
                &stamps,
                &patches,
            ],
        )
        .await?;
    Ok(())
}

/// A binary COPY into `target` (a table and its columns) of rows of `types`. Rows written go out
/// as the buffer fills; the copy counts once `finish` is awaited and is aborted if dropped before.
async fn binary_copy(
    client: &ClientWrapper,
    target: &str,
    types: &[Type],
) -> Result<BinaryCopyInWriter, Fault> {
    let copy = client
        .prepare_cached(&format!("COPY {target} FROM STDIN (FORMAT binary)"))
        .await?;
    Ok(BinaryCopyInWriter::new(client.copy_in(&copy).await?, types))
}

/// The stored states of the entries `$2` of patient `$1` that exist.
const LOAD_STATES: &str =
    "SELECT entry_id, state FROM entries WHERE patient_id = $1 AND entry_id = ANY ($2)";

/// Entry states from rows of [`LOAD_STATES`].
fn decode_states(rows: &[Row]) -> Result<BTreeMap<Uuid, EntryState>, Fault> {
    rows.iter()
        .map(|r| {
            let Json(Stored(state)) = r.try_get(1)?;
            Ok((r.try_get(0)?, state))
        })
        .collect()
}

/// The local day of `state` as a date, if it has one.
fn day_of(state: &EntryState) -> Result<Option<NaiveDate>, Fault> {
    state
        .day()
        .map(|day| {
            heeldiary_core::calendar::parse_day(day).map_err(|e| {
                StorageError::Internal(format!("entry day {day:?} is not a date: {e}")).into()
            })
        })
        .transpose()
}

/// Stores the states of entries new to the server: with one binary COPY when there are many,
/// else with one INSERT (see [`insert_ops`]). The push read every stored state of its entries
/// under the patient's lock, so which rows exist is known and no row needs a conflict check.
async fn insert_states(
    client: &ClientWrapper,
    insert: &Statement,
    patient_id: Uuid,
    states: &[(&Uuid, &EntryState)],
    updated_at: DateTime<Utc>,
) -> Result<(), Fault> {
    if states.len() <= ROWS_PER_INSERT {
        return write_states(client, insert, patient_id, states, updated_at).await;
    }
    let rows = binary_copy(
        client,
        "entries (patient_id, entry_id, day, deleted, state, updated_at)",
        &[
            Type::UUID,
            Type::UUID,
            Type::DATE,
            Type::BOOL,
            Type::JSON,
            Type::TIMESTAMPTZ,
        ],
    )
    .await?;
    let mut rows = pin!(rows);
    for (entry_id, state) in states {
        rows.as_mut()
            .write(&[
                &patient_id,
                entry_id,
                &day_of(state)?,
                &state.is_deleted(),
                &Json(Stored(*state)),
                &updated_at,
            ])
            .await?;
    }
    rows.finish().await?;
    Ok(())
}

/// Writes `states` with one statement of arrays, column by column: the INSERT of
/// [`insert_states`] for a few new entries, or the UPDATE of the entries stored already. Both
/// take the patient, the time, then the ids, days, deleted flags and stored states.
async fn write_states(
    client: &ClientWrapper,
    statement: &Statement,
    patient_id: Uuid,
    states: &[(&Uuid, &EntryState)],
    updated_at: DateTime<Utc>,
) -> Result<(), Fault> {
    if states.is_empty() {
        return Ok(());
    }
    let (ids, days, deleted, json) = state_columns(states)?;
    client
        .execute(
            statement,
            &[&patient_id, &updated_at, &ids, &days, &deleted, &json],
        )
        .await?;
    Ok(())
}

/// Entry ids, days, deleted flags and stored states of `states`, column by column.
#[allow(clippy::type_complexity)]
fn state_columns<'s>(
    states: &[(&Uuid, &'s EntryState)],
) -> Result<
    (
        Vec<Uuid>,
        Vec<Option<NaiveDate>>,
        Vec<bool>,
        Vec<Json<Stored<&'s EntryState>>>,
    ),
    Fault,
> {
    let ids = states.iter().map(|(id, _)| **id).collect();
    let days = states
        .iter()
        .map(|(_, s)| day_of(s))
        .collect::<Result<_, _>>()?;
    let deleted = states.iter().map(|(_, s)| s.is_deleted()).collect();
    let json = states.iter().map(|(_, s)| Json(Stored(*s))).collect();
    Ok((ids, days, deleted, json))
}

/// An operation of the feed from a row of [`FEED_COLUMNS`](crate::storage::FEED_COLUMNS).
pub(super) fn pulled_op(r: &Row) -> Result<PulledOp, Fault> {
    let hlc: String = r.try_get(4)?;
    let Json(patch): Json<Patch> = r.try_get(5)?;
    Ok(PulledOp {
        cursor: from_i64(r.try_get(0)?)?,
        received_at: r.try_get(6)?,
        op: Op {
            entry_id: r.try_get(3)?,
            device_id: r.try_get(1)?,
            device_seq: from_i64(r.try_get(2)?)?,
            hlc: parse_hlc(&hlc)?,
            patch,
        },
    })
}
