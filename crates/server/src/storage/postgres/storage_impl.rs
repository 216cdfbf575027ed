//! The [`Storage`] implementation the handlers call: single statements retried after a conflict,
//! and the two transactions of [`super::transactions`].

use crate::storage::some_row;
use crate::storage::{feed_page, feed_query, held_bounds, HeldOwnOps, PushAfter};
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use heeldiary_core::wire::PushResult;
use heeldiary_core::{EntryState, Op, Stored};
use tokio_postgres::types::Json;
use tokio_postgres::{IsolationLevel, Row};
use uuid::Uuid;

use super::faults::{retrying, Fault};
use super::transactions::{pulled_op, register_device};
use super::PostgresStorage;
use crate::secrets::SecretHash;
use crate::storage::{
    erasable_table, hash_from_bytes, to_i64, AnalystCredentials, DeviceCredentials, DeviceInfo,
    ErasureRecord, ExportRecord, NewAnalyst, NewCode, NewDevice, NewPatient, PullPage,
    ResearchConsent, Storage, StorageError, StoredEntry, FEED_COLUMNS,
};

/// Whether `e` says a row is still referenced by another table's row.
fn is_foreign_key_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
}

impl Storage for PostgresStorage {
    async fn create_patient(&self, patient: NewPatient) -> Result<(), StorageError> {
        let inserted = self
            .execute(
                "INSERT INTO patients (patient_id, label, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (patient_id) DO NOTHING",
                &[&patient.patient_id, &patient.label, &patient.created_at],
            )
            .await?;
        if inserted == 0 {
            return Err(StorageError::Conflict("the patient exists already".into()));
        }
        Ok(())
    }

    async fn issue_code(&self, code: NewCode) -> Result<(), StorageError> {
        let inserted = self
            .execute(
                "INSERT INTO enrolment_codes (code_hash, patient_id, expires_at, created_at)
                 SELECT $1, patient_id, $3, $4 FROM patients WHERE patient_id = $2",
                &[
                    &code.code_hash.as_bytes().as_slice(),
                    &code.patient_id,
                    &code.expires_at,
                    &code.created_at,
                ],
            )
            .await?;
        some_row(inserted)?;
        Ok(())
    }

    async fn enrol(
        &self,
        code_hash: SecretHash,
        device: NewDevice,
        now: DateTime<Utc>,
    ) -> Result<Uuid, StorageError> {
        retrying(|| self.enrol_once(code_hash, &device, now)).await
    }

    async fn authenticate(
        &self,
        patient_id: Uuid,
        device_id: Uuid,
    ) -> Result<Option<DeviceCredentials>, StorageError> {
        let rows = self
            .query(
                "SELECT d.token_hash, d.role, d.revoked_at IS NOT NULL, e.epoch
                 FROM devices d, feed_epoch e
                 WHERE d.patient_id = $1 AND d.device_id = $2",
                &[&patient_id, &device_id],
            )
            .await?;
        let credentials = |r: &Row| -> Result<DeviceCredentials, Fault> {
            let role: String = r.try_get(1)?;
            Ok(DeviceCredentials {
                token_hash: hash_from_bytes(r.try_get(0)?)?,
                role: role.parse()?,
                revoked: r.try_get(2)?,
                epoch: r.try_get(3)?,
            })
        };
        Ok(rows.first().map(credentials).transpose()?)
    }

    async fn revoke_device(
        &self,
        patient_id: Uuid,
        device_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let changed = self
            .execute(
                "UPDATE devices SET revoked_at = COALESCE(revoked_at, $3)
                 WHERE patient_id = $1 AND device_id = $2",
                &[&patient_id, &device_id, &now],
            )
            .await?;
        some_row(changed)?;
        Ok(())
    }

    async fn list_devices(&self, patient_id: Uuid) -> Result<Vec<DeviceInfo>, StorageError> {
        // One row per device, or one row of nulls for a patient without devices; no row at all
        // for an unknown patient.
        let rows = self
            .query(
                "SELECT d.device_id, d.role, d.label, d.enrolled_at, d.revoked_at
                 FROM patients p
                 LEFT JOIN devices d ON d.patient_id = p.patient_id
                 WHERE p.patient_id = $1
                 ORDER BY d.enrolled_at, d.device_id",
                &[&patient_id],
            )
            .await?;
        if rows.is_empty() {
            return Err(StorageError::NotFound);
        }
        let device = |r: &Row| -> Result<Option<DeviceInfo>, Fault> {
            let Some(device_id) = r.try_get(0)? else {
                return Ok(None);
            };
            let role: String = r.try_get(1)?;
            Ok(Some(DeviceInfo {
                device_id,
                role: role.parse()?,
                label: r.try_get(2)?,
                enrolled_at: r.try_get(3)?,
                revoked_at: r.try_get(4)?,
            }))
        };
        let devices: Vec<Option<DeviceInfo>> = rows.iter().map(device).collect::<Result<_, _>>()?;
        Ok(devices.into_iter().flatten().collect())
    }

    async fn push_after(
        &self,
        patient_id: Uuid,
        after: Option<PushAfter>,
        ops: Vec<Op>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<PushResult>, StorageError> {
        retrying(|| self.push_once(patient_id, after, &ops, received_at)).await
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
        let rows = self
            .query(
                &feed_query('$'),
                &[
                    &patient_id,
                    &after_cursor,
                    &device_id,
                    &through_seq,
                    &(i64::from(limit) + 1),
                ],
            )
            .await?;
        let ops = rows.iter().map(pulled_op).collect::<Result<_, _>>()?;
        Ok(feed_page(ops, after, limit, held))
    }

    async fn entry(
        &self,
        patient_id: Uuid,
        entry_id: Uuid,
        after: u64,
        limit: u32,
    ) -> Result<Option<StoredEntry>, StorageError> {
        let after = to_i64(after, "cursor")?;
        let fetch = i64::from(limit) + 1;
        retrying(|| {
            // One snapshot for the state and its history, so they agree.
            self.in_transaction(IsolationLevel::RepeatableRead, async |tx| {
                let state = tx
                    .query_opt(
                        "SELECT state FROM entries WHERE patient_id = $1 AND entry_id = $2",
                        &[&patient_id, &entry_id],
                    )
                    .await?;
                let Some(state) = state else {
                    return Ok(None);
                };
                let Json(Stored(state)): Json<Stored<EntryState>> = state.try_get(0)?;
                let rows = tx
                    .query(
                        &format!(
                            "SELECT {FEED_COLUMNS} FROM ops
                             WHERE patient_id = $1 AND entry_id = $2 AND cursor > $3
                             ORDER BY cursor LIMIT $4"
                        ),
                        &[&patient_id, &entry_id, &after, &fetch],
                    )
                    .await?;
                Ok(Some(StoredEntry {
                    state,
                    has_more: rows.len() > limit as usize,
                    ops: rows
                        .iter()
                        .take(limit as usize)
                        .map(pulled_op)
                        .collect::<Result<_, _>>()?,
                }))
            })
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
        let rows = self.query("SELECT epoch FROM feed_epoch", &[]).await?;
        let row = rows
            .first()
            .ok_or_else(|| StorageError::Internal("the feed has no epoch".into()))?;
        row.try_get(0)
            .map_err(|e| StorageError::Internal(format!("stored epoch unreadable: {e}")))
    }

    async fn mark_restored(&self, now: DateTime<Utc>) -> Result<Uuid, StorageError> {
        let epoch = Uuid::new_v4();
        self.execute(
            "UPDATE feed_epoch SET epoch = $1, declared_at = $2, reason = 'restored'",
            &[&epoch, &now],
        )
        .await?;
        Ok(epoch)
    }

    async fn create_patient_with_code(
        &self,
        patient: NewPatient,
        code: NewCode,
    ) -> Result<(), StorageError> {
        retrying(|| {
            self.in_transaction(IsolationLevel::ReadCommitted, async |tx| {
                let inserted = tx
                    .execute(
                        "INSERT INTO patients (patient_id, label, created_at) VALUES ($1, $2, $3)
                         ON CONFLICT (patient_id) DO NOTHING",
                        &[&patient.patient_id, &patient.label, &patient.created_at],
                    )
                    .await?;
                if inserted == 0 {
                    return Err(StorageError::Conflict("the patient exists already".into()).into());
                }
                tx.execute(
                    "INSERT INTO enrolment_codes (code_hash, patient_id, expires_at, created_at)
                     VALUES ($1, $2, $3, $4)",
                    &[
                        &code.code_hash.as_bytes().as_slice(),
                        &code.patient_id,
                        &code.expires_at,
                        &code.created_at,
                    ],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn add_device(
        &self,
        patient_id: Uuid,
        device: NewDevice,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        retrying(|| {
            self.in_transaction(IsolationLevel::ReadCommitted, async |tx| {
                let known = tx
                    .query_opt(
                        "SELECT 1 FROM patients WHERE patient_id = $1 FOR KEY SHARE",
                        &[&patient_id],
                    )
                    .await?;
                if known.is_none() {
                    return Err(StorageError::NotFound.into());
                }
                register_device(tx, patient_id, &device, now).await?;
                Ok(())
            })
        })
        .await
    }

    async fn erase_patient(
        &self,
        patient_id: Uuid,
        erased_by: String,
        now: DateTime<Utc>,
    ) -> Result<ErasureRecord, StorageError> {
        retrying(|| {
            self.in_transaction(IsolationLevel::ReadCommitted, async |tx| {
                // The patient row locked first: a push of this patient waits, then finds no
                // patient.
                let known = tx
                    .query_opt(
                        "SELECT 1 FROM patients WHERE patient_id = $1 FOR UPDATE",
                        &[&patient_id],
                    )
                    .await?;
                if known.is_none() {
                    return Err(StorageError::NotFound.into());
                }
                let tables: Vec<String> = tx
                    .query(
                        "SELECT c.table_name::text FROM information_schema.columns c
                         JOIN information_schema.tables t
                           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
                         WHERE c.table_schema = current_schema() AND c.column_name = 'patient_id'
                           AND t.table_type = 'BASE TABLE'
                         ORDER BY c.table_name",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                let mut pending: Vec<String> = tables
                    .into_iter()
                    .filter(|t| erasable_table(t) && t != "patients")
                    .collect();
                let mut rows_removed = BTreeMap::new();
                // Tables other work adds may reference each other: a table still referenced
                // by rows of the patient elsewhere is tried again after the others.
                for _pass in 0..=pending.len() {
                    let mut blocked = Vec::new();
                    for table in pending {
                        tx.batch_execute("SAVEPOINT erase_table").await?;
                        let deleted = tx
                            .execute(
                                &format!("DELETE FROM \"{table}\" WHERE patient_id = $1"),
                                &[&patient_id],
                            )
                            .await;
                        match deleted {
                            Ok(n) => {
                                tx.batch_execute("RELEASE SAVEPOINT erase_table").await?;
                                rows_removed.insert(table, n);
                            }
                            Err(e) if is_foreign_key_violation(&e) => {
                                tx.batch_execute("ROLLBACK TO SAVEPOINT erase_table")
                                    .await?;
                                blocked.push(table);
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    pending = blocked;
                    if pending.is_empty() {
                        break;
                    }
                }
                if let Some(table) = pending.first() {
                    return Err(StorageError::Internal(format!(
                        "rows of {table} could not be erased: another table still refers to them"
                    ))
                    .into());
                }
                let removed = tx
                    .execute("DELETE FROM patients WHERE patient_id = $1", &[&patient_id])
                    .await?;
                rows_removed.insert("patients".to_string(), removed);
                let record = ErasureRecord {
                    erasure_id: Uuid::now_v7(),
                    patient_id,
                    erased_at: now,
                    erased_by: erased_by.clone(),
                    rows_removed,
                };
                tx.execute(
                    "INSERT INTO erasures (erasure_id, patient_id, erased_at, erased_by,
                                           rows_removed)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &record.erasure_id,
                        &patient_id,
                        &now,
                        &record.erased_by,
                        &Json(&record.rows_removed),
                    ],
                )
                .await?;
                Ok(record)
            })
        })
        .await
    }

    async fn erased_at(&self, patient_id: Uuid) -> Result<Option<DateTime<Utc>>, StorageError> {
        let rows = self
            .query(
                "SELECT max(erased_at) FROM erasures WHERE patient_id = $1",
                &[&patient_id],
            )
            .await?;
        match rows.first() {
            Some(row) => row
                .try_get(0)
                .map_err(|e| StorageError::Internal(format!("stored erasure unreadable: {e}"))),
            None => Ok(None),
        }
    }

    async fn health(&self) -> Result<(), StorageError> {
        self.query("SELECT COUNT(*) FROM schema_migrations", &[])
            .await?;
        Ok(())
    }
}
