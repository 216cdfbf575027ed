//! The [`Storage`] implementation the handlers call: single statements retried after a conflict,
//! and the two transactions of [`super::transactions`].

use chrono::{DateTime, Utc};
use heeldiary_core::wire::PushResult;
use heeldiary_core::{EntryState, Op};
use tokio_postgres::types::Json;
use tokio_postgres::{IsolationLevel, Row};
use uuid::Uuid;

use super::faults::{retrying, Fault};
use super::transactions::pulled_op;
use super::PostgresStorage;
use crate::secrets::SecretHash;
use crate::storage::{
    hash_from_bytes, to_i64, AnalystCredentials, DeviceCredentials, DeviceInfo, ExportRecord,
    NewAnalyst, NewCode, NewDevice, NewPatient, PullPage, ResearchConsent, Storage, StorageError,
    StoredEntry, FEED_COLUMNS,
};

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
        if inserted == 0 {
            return Err(StorageError::NotFound);
        }
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
                "SELECT token_hash, role, revoked_at IS NOT NULL FROM devices
                 WHERE patient_id = $1 AND device_id = $2",
                &[&patient_id, &device_id],
            )
            .await?;
        let credentials = |r: &Row| -> Result<DeviceCredentials, Fault> {
            let role: String = r.try_get(1)?;
            Ok(DeviceCredentials {
                token_hash: hash_from_bytes(r.try_get(0)?)?,
                role: role.parse()?,
                revoked: r.try_get(2)?,
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
        if changed == 0 {
            return Err(StorageError::NotFound);
        }
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

    async fn push(
        &self,
        patient_id: Uuid,
        ops: Vec<Op>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<PushResult>, StorageError> {
        retrying(|| self.push_once(patient_id, &ops, received_at)).await
    }

    async fn pull(
        &self,
        patient_id: Uuid,
        after: u64,
        limit: u32,
    ) -> Result<PullPage, StorageError> {
        let after = to_i64(after, "cursor")?;
        let rows = self
            .query(
                &format!(
                    "SELECT {FEED_COLUMNS} FROM ops WHERE patient_id = $1 AND cursor > $2
                     ORDER BY cursor LIMIT $3"
                ),
                &[&patient_id, &after, &(i64::from(limit) + 1)],
            )
            .await?;
        let has_more = rows.len() > limit as usize;
        let ops = rows
            .iter()
            .take(limit as usize)
            .map(pulled_op)
            .collect::<Result<_, _>>()?;
        Ok(PullPage { ops, has_more })
    }

    async fn entry(
        &self,
        patient_id: Uuid,
        entry_id: Uuid,
    ) -> Result<Option<StoredEntry>, StorageError> {
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
                let Json(state): Json<EntryState> = state.try_get(0)?;
                let rows = tx
                    .query(
                        &format!(
                            "SELECT {FEED_COLUMNS} FROM ops WHERE patient_id = $1 AND entry_id = $2
                             ORDER BY cursor"
                        ),
                        &[&patient_id, &entry_id],
                    )
                    .await?;
                Ok(Some(StoredEntry {
                    state,
                    ops: rows.iter().map(pulled_op).collect::<Result<_, _>>()?,
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

    async fn record_export(&self, record: ExportRecord) -> Result<(), StorageError> {
        self.record_export_impl(record).await
    }

    async fn export_log(&self, limit: u32) -> Result<Vec<ExportRecord>, StorageError> {
        self.export_log_impl(limit).await
    }

    async fn health(&self) -> Result<(), StorageError> {
        self.query("SELECT COUNT(*) FROM schema_migrations", &[])
            .await?;
        Ok(())
    }
}
