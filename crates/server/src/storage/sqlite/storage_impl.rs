//! The [`Storage`] implementation the handlers call: each call is one closure run on the
//! connection, the two that decide something are the transactions of [`super::transactions`].

use crate::storage::some_row;
use crate::storage::{feed_page, feed_query, held_bounds, HeldOwnOps, PushAfter};
use chrono::{DateTime, Utc};
use heeldiary_core::wire::PushResult;
use heeldiary_core::Op;
use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

use super::connection::without_waiting;
use super::transactions::{
    enrol_tx, op_row, parse_state, parse_time, parse_uuid, register_device, time_text, DeviceRow,
    FeedDecoder, OpRow,
};
use super::SqliteStorage;
use crate::secrets::SecretHash;
use crate::storage::{
    erasable_table, hash_from_bytes, to_i64, AnalystCredentials, DeviceCredentials, DeviceInfo,
    ErasureRecord, ExportRecord, NewAnalyst, NewCode, NewDevice, NewPatient, PullPage,
    ResearchConsent, Storage, StorageError, StoredEntry, FEED_COLUMNS,
};

/// Stores an enrolment code of a patient known to exist.
fn insert_code(tx: &Connection, code: &NewCode) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO enrolment_codes (code_hash, patient_id, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            code.code_hash.as_bytes().as_slice(),
            code.patient_id.to_string(),
            time_text(code.expires_at),
            time_text(code.created_at)
        ],
    )?;
    Ok(())
}

/// Feed rows a pull reads on the calling thread before it hands a longer page to the blocking
/// pool: more than a day of any patient's devices write.
const QUICK_FEED_ROWS: u32 = 32;

impl Storage for SqliteStorage {
    async fn create_patient(&self, patient: NewPatient) -> Result<(), StorageError> {
        self.call(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO patients (patient_id, label, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (patient_id) DO NOTHING",
                params![
                    patient.patient_id.to_string(),
                    patient.label,
                    time_text(patient.created_at)
                ],
            )?;
            if inserted == 0 {
                return Err(StorageError::Conflict("the patient exists already".into()));
            }
            Ok(())
        })
        .await
    }

    async fn issue_code(&self, code: NewCode) -> Result<(), StorageError> {
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let patient = code.patient_id.to_string();
            let known = tx
                .prepare_cached("SELECT 1 FROM patients WHERE patient_id = ?1")?
                .exists([&patient])?;
            if !known {
                return Err(StorageError::NotFound);
            }
            insert_code(&tx, &code)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn enrol(
        &self,
        code_hash: SecretHash,
        device: NewDevice,
        now: DateTime<Utc>,
    ) -> Result<Uuid, StorageError> {
        self.call(move |conn| enrol_tx(conn, code_hash, &device, now))
            .await
    }

    async fn authenticate(
        &self,
        patient_id: Uuid,
        device_id: Uuid,
    ) -> Result<Option<DeviceCredentials>, StorageError> {
        self.read_by_key(move |conn| {
            let row: Option<(Vec<u8>, String, Option<String>, String)> = conn
                .prepare_cached(
                    "SELECT d.token_hash, d.role, d.revoked_at, e.epoch
                     FROM devices d, feed_epoch e
                     WHERE d.patient_id = ?1 AND d.device_id = ?2",
                )?
                .query_row(
                    params![patient_id.to_string(), device_id.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            row.map(|(hash, role, revoked_at, epoch)| {
                Ok(DeviceCredentials {
                    token_hash: hash_from_bytes(hash)?,
                    role: role.parse()?,
                    revoked: revoked_at.is_some(),
                    epoch: parse_uuid(&epoch)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn revoke_device(
        &self,
        patient_id: Uuid,
        device_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.call(move |conn| {
            let changed = conn.execute(
                "UPDATE devices SET revoked_at = COALESCE(revoked_at, ?3)
                 WHERE patient_id = ?1 AND device_id = ?2",
                params![
                    patient_id.to_string(),
                    device_id.to_string(),
                    time_text(now)
                ],
            )?;
            some_row(changed)?;
            Ok(())
        })
        .await
    }

    async fn list_devices(&self, patient_id: Uuid) -> Result<Vec<DeviceInfo>, StorageError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let patient = patient_id.to_string();
            let known = tx
                .prepare_cached("SELECT 1 FROM patients WHERE patient_id = ?1")?
                .exists([&patient])?;
            if !known {
                return Err(StorageError::NotFound);
            }
            let rows: Vec<DeviceRow> = tx
                .prepare_cached(
                    "SELECT device_id, role, label, enrolled_at, revoked_at FROM devices
                     WHERE patient_id = ?1 ORDER BY enrolled_at, device_id",
                )?
                .query_map([&patient], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(device_id, role, label, enrolled_at, revoked_at)| {
                    Ok(DeviceInfo {
                        device_id: parse_uuid(&device_id)?,
                        role: role.parse()?,
                        label,
                        enrolled_at: parse_time(&enrolled_at)?,
                        revoked_at: revoked_at.as_deref().map(parse_time).transpose()?,
                    })
                })
                .collect()
        })
        .await
    }

    /// A push is queued for the writer when first polled, and the writer takes the queue in
    /// order (`push_queued`).
    fn queues_pushes_when_polled(&self) -> bool {
        true
    }

    async fn push_after(
        &self,
        patient_id: Uuid,
        after: Option<PushAfter>,
        ops: Vec<Op>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<PushResult>, StorageError> {
        self.push_queued(patient_id, after, ops, received_at).await
    }

    async fn pull_leaving_out(
        &self,
        patient_id: Uuid,
        after: u64,
        limit: u32,
        held: Option<HeldOwnOps>,
    ) -> Result<PullPage, StorageError> {
        let after_cursor = to_i64(after, "cursor")?;
        let (device_id, through_seq) = held_bounds(held)?;
        let feed = move |conn: &mut Connection, rows: u32| -> Result<Vec<OpRow>, StorageError> {
            Ok(conn
                .prepare_cached(&feed_query('?'))?
                .query_map(
                    params![
                        patient_id.to_string(),
                        after_cursor,
                        device_id.to_string(),
                        through_seq,
                        i64::from(rows)
                    ],
                    op_row,
                )?
                .collect::<Result<_, _>>()?)
        };
        let page = move |rows: Vec<OpRow>| -> Result<PullPage, StorageError> {
            let mut decoder = FeedDecoder::default();
            let ops = rows
                .into_iter()
                .map(|row| decoder.pulled_op(row))
                .collect::<Result<_, _>>()?;
            Ok(feed_page(ops, after, limit, held))
        };
        // A reading connection: a pull need not wait for a push being committed. A device that
        // pulls after its own push still finds it, since a push is answered once committed.
        //
        // A day's changes are a few rows: they are read at once on this thread, for less than
        // handing the read to another thread and back costs. Fewer rows than asked for are all
        // there is, the same rows as the whole page's query finds; a longer page is read again
        // in full on the blocking pool.
        let quick = limit.min(QUICK_FEED_ROWS);
        let at_once = self
            .readers
            .try_idle(|conn| without_waiting(conn, |conn| feed(conn, quick + 1)));
        match at_once {
            Ok(Some(Ok(rows))) if rows.len() <= quick as usize || quick == limit => {
                return page(rows)
            }
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok(_)) | None) | Err(_) => {}
        }
        self.read(move |conn| page(feed(conn, limit + 1)?)).await
    }

    async fn entry(
        &self,
        patient_id: Uuid,
        entry_id: Uuid,
        after: u64,
        limit: u32,
    ) -> Result<Option<StoredEntry>, StorageError> {
        let after = to_i64(after, "cursor")?;
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let (patient, entry) = (patient_id.to_string(), entry_id.to_string());
            let state: Option<String> = tx
                .prepare_cached(
                    "SELECT state FROM entries WHERE patient_id = ?1 AND entry_id = ?2",
                )?
                .query_row([&patient, &entry], |r| r.get(0))
                .optional()?;
            let Some(state) = state else {
                return Ok(None);
            };
            let rows: Vec<OpRow> = tx
                .prepare_cached(&format!(
                    "SELECT {FEED_COLUMNS} FROM ops
                     WHERE patient_id = ?1 AND entry_id = ?2 AND cursor > ?3
                     ORDER BY cursor LIMIT ?4"
                ))?
                .query_map(
                    params![&patient, &entry, after, i64::from(limit) + 1],
                    op_row,
                )?
                .collect::<Result<_, _>>()?;
            let has_more = rows.len() > limit as usize;
            let mut decoder = FeedDecoder::default();
            Ok(Some(StoredEntry {
                state: parse_state(&state)?,
                ops: rows
                    .into_iter()
                    .take(limit as usize)
                    .map(|row| decoder.pulled_op(row))
                    .collect::<Result<_, _>>()?,
                has_more,
            }))
        })
        .await
    }

    async fn set_research_consent(&self, consent: ResearchConsent) -> Result<(), StorageError> {
        self.set_research_consent_impl(consent).await
    }

    async fn consenting_patients(&self) -> Result<Vec<Uuid>, StorageError> {
        self.consenting_patients_impl().await
    }

    async fn add_analyst(&self, analyst: NewAnalyst) -> Result<(), StorageError> {
        self.add_analyst_impl(analyst).await
    }

    async fn analyst_credentials(
        &self,
        analyst_id: Uuid,
    ) -> Result<Option<AnalystCredentials>, StorageError> {
        self.analyst_credentials_impl(analyst_id).await
    }

    async fn revoke_analyst(
        &self,
        analyst_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.revoke_analyst_impl(analyst_id, now).await
    }

    async fn export_entries(
        &self,
        patient_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<crate::storage::ExportEntry>, StorageError> {
        self.export_entries_impl(patient_id, after, limit).await
    }

    async fn export_entries_by_day(
        &self,
        patient_id: Uuid,
        page: u32,
    ) -> Result<crate::storage::ExportPages, StorageError> {
        self.export_entries_by_day_impl(patient_id, page).await
    }

    async fn first_entry_day(
        &self,
        patient_id: Uuid,
    ) -> Result<Option<chrono::NaiveDate>, StorageError> {
        self.first_entry_day_impl(patient_id).await
    }

    async fn record_export_access(
        &self,
        records: Vec<crate::storage::AccessRecord>,
    ) -> Result<(), StorageError> {
        self.record_export_access_impl(records).await
    }

    async fn record_export(&self, record: ExportRecord) -> Result<(), StorageError> {
        self.record_export_impl(record).await
    }

    async fn export_log(&self, limit: u32) -> Result<Vec<ExportRecord>, StorageError> {
        self.export_log_impl(limit).await
    }

    async fn epoch(&self) -> Result<Uuid, StorageError> {
        self.read(|conn| {
            let text: String = conn
                .prepare_cached("SELECT epoch FROM feed_epoch")?
                .query_row([], |r| r.get(0))?;
            parse_uuid(&text)
        })
        .await
    }

    async fn mark_restored(&self, now: DateTime<Utc>) -> Result<Uuid, StorageError> {
        let epoch = Uuid::new_v4();
        self.call(move |conn| {
            conn.execute(
                "UPDATE feed_epoch SET epoch = ?1, declared_at = ?2, reason = 'restored'",
                params![epoch.to_string(), time_text(now)],
            )?;
            Ok(epoch)
        })
        .await
    }

    async fn create_patient_with_code(
        &self,
        patient: NewPatient,
        code: NewCode,
    ) -> Result<(), StorageError> {
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let inserted = tx.execute(
                "INSERT INTO patients (patient_id, label, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (patient_id) DO NOTHING",
                params![
                    patient.patient_id.to_string(),
                    patient.label,
                    time_text(patient.created_at)
                ],
            )?;
            if inserted == 0 {
                return Err(StorageError::Conflict("the patient exists already".into()));
            }
            insert_code(&tx, &code)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn add_device(
        &self,
        patient_id: Uuid,
        device: NewDevice,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let patient = patient_id.to_string();
            let known = tx
                .prepare_cached("SELECT 1 FROM patients WHERE patient_id = ?1")?
                .exists([&patient])?;
            if !known {
                return Err(StorageError::NotFound);
            }
            register_device(&tx, &patient, &device, &time_text(now))?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn erase_patient(
        &self,
        patient_id: Uuid,
        erased_by: String,
        now: DateTime<Utc>,
    ) -> Result<ErasureRecord, StorageError> {
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let patient = patient_id.to_string();
            let known = tx
                .prepare_cached("SELECT 1 FROM patients WHERE patient_id = ?1")?
                .exists([&patient])?;
            if !known {
                return Err(StorageError::NotFound);
            }
            // Tables other work adds reference each other in any order: check the foreign
            // keys once, at commit, when every row of the patient is gone.
            tx.pragma_update(None, "defer_foreign_keys", true)?;
            let tables: Vec<String> = tx
                .prepare(
                    "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c
                     WHERE m.type = 'table' AND c.name = 'patient_id' ORDER BY m.name",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut rows_removed = BTreeMap::new();
            for table in tables.iter().filter(|t| erasable_table(t)) {
                let removed = tx.execute(
                    &format!("DELETE FROM \"{table}\" WHERE patient_id = ?1"),
                    [&patient],
                )?;
                rows_removed.insert(table.clone(), removed as u64);
            }
            let record = ErasureRecord {
                erasure_id: Uuid::now_v7(),
                patient_id,
                erased_at: now,
                erased_by,
                rows_removed,
            };
            tx.execute(
                "INSERT INTO erasures (erasure_id, patient_id, erased_at, erased_by, rows_removed)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    record.erasure_id.to_string(),
                    patient,
                    time_text(now),
                    record.erased_by,
                    serde_json::to_string(&record.rows_removed)
                        .map_err(|e| StorageError::Internal(e.to_string()))?
                ],
            )?;
            tx.commit()?;
            Ok(record)
        })
        .await
    }

    async fn erased_at(&self, patient_id: Uuid) -> Result<Option<DateTime<Utc>>, StorageError> {
        self.read(move |conn| {
            let at: Option<String> = conn
                .prepare_cached("SELECT max(erased_at) FROM erasures WHERE patient_id = ?1")?
                .query_row([patient_id.to_string()], |r| r.get(0))?;
            at.as_deref().map(parse_time).transpose()
        })
        .await
    }

    async fn health(&self) -> Result<(), StorageError> {
        self.call(|conn| {
            conn.query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance::{batch, enrolled};
    use crate::storage::Storage;

    /// Pages of every length around the rows a pull reads on the calling thread are whole: paging
    /// through the feed finds every operation not held once and in cursor order, every page but
    /// the last as long as the limit, and ends at the patient's last cursor.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_longer_or_shorter_than_a_quick_read_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open_dir(dir.path()).await.unwrap();
        let (patient, phone) = enrolled(&storage).await;
        let total = 3 * u64::from(QUICK_FEED_ROWS);
        storage
            .push(patient, batch(phone, 1, total), Utc::now())
            .await
            .unwrap();
        let quick = QUICK_FEED_ROWS;
        for through_seq in [None, Some(total / 2), Some(total)] {
            let held = through_seq.map(|through_seq| HeldOwnOps {
                device_id: phone,
                through_seq,
            });
            let expected: Vec<u64> = (through_seq.unwrap_or(0) + 1..=total).collect();
            for limit in [
                1,
                quick - 1,
                quick,
                quick + 1,
                2 * quick,
                3 * quick + 1,
                2_000,
            ] {
                let (mut after, mut cursors) = (0, Vec::new());
                loop {
                    let page = storage
                        .pull_leaving_out(patient, after, limit, held)
                        .await
                        .unwrap();
                    cursors.extend(page.ops.iter().map(|p| p.cursor));
                    after = page.next_cursor;
                    if !page.has_more {
                        break;
                    }
                    assert_eq!(page.ops.len(), limit as usize, "{held:?}, limit {limit}");
                }
                assert_eq!(cursors, expected, "{held:?}, limit {limit}");
                assert_eq!(after, total, "{held:?}, limit {limit}");
            }
        }
    }
}
