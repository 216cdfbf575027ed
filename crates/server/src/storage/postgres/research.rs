//! Research consent, analysts and the export log on PostgreSQL: the storage calls of the
//! analyst export, each a single statement (retried like every other), except the by-day read,
//! which fetches one patient's snapshot page by page on a connection of its own.

use crate::storage::some_row;
use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use tokio_postgres::types::Json;
use tokio_postgres::{IsolationLevel, Row};
use uuid::Uuid;

use super::faults::{retrying, Fault};
use super::transactions::pulled_op;
use super::PostgresStorage;
use crate::storage::{
    hash_from_bytes, AccessRecord, AnalystCredentials, ExportEntry, ExportPages, ExportRecord,
    NewAnalyst, PageSender, ResearchConsent, StorageError, FEED_COLUMNS,
};

/// The columns [`export_entry`] reads: a deleted entry's values are not exported, so its
/// state is not sent.
const EXPORT_COLUMNS: &str =
    "entry_id, deleted, CASE WHEN deleted THEN '' ELSE state::text END, updated_at, day";

/// Hands the by-day pages of a patient (see
/// [`Storage::export_entries_by_day`](crate::storage::Storage::export_entries_by_day)) to
/// `sender`, until it finds the reader gone, and returns the last page, to send with the end.
/// One read-only snapshot; each statement is bound to a portal that is fetched a page at a
/// time, so neither side holds more than a few pages.
async fn read_by_day(
    client: &mut Client,
    patient_id: Uuid,
    page: u32,
    sender: &PageSender,
) -> Result<Vec<ExportEntry>, Fault> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let size = i32::try_from(page.max(1)).unwrap_or(i32::MAX);
    let mut held = Vec::new();
    for sql in [
        "WHERE patient_id = $1 AND day IS NULL AND deleted ORDER BY entry_id",
        "WHERE patient_id = $1 AND day IS NOT NULL ORDER BY day, entry_id",
    ] {
        let statement = tx
            .prepare_cached(&format!("SELECT {EXPORT_COLUMNS} FROM entries {sql}"))
            .await?;
        let portal = tx.bind(&statement, &[&patient_id]).await?;
        loop {
            let rows = tx.query_portal(&portal, size).await?;
            let last = rows.len() < size as usize;
            let entries = rows
                .iter()
                .map(export_entry)
                .collect::<Result<Vec<_>, _>>()?;
            // A page is held until the next one arrives, so the last goes with the end.
            if !entries.is_empty() {
                let ready = std::mem::replace(&mut held, entries);
                if !ready.is_empty() && !sender.send(ready).await {
                    return Ok(Vec::new());
                }
            }
            if last {
                break;
            }
        }
    }
    tx.commit().await?;
    Ok(held)
}

/// One stored entry as the export reads it, without its operations.
fn export_entry(r: &Row) -> Result<ExportEntry, tokio_postgres::Error> {
    Ok(ExportEntry {
        entry_id: r.try_get(0)?,
        deleted: r.try_get(1)?,
        state: r.try_get(2)?,
        updated_at: r.try_get(3)?,
        day: r.try_get(4)?,
        ops: Vec::new(),
    })
}

impl PostgresStorage {
    pub(super) async fn set_research_consent_impl(
        &self,
        c: ResearchConsent,
    ) -> Result<(), StorageError> {
        // Inserting through the patients row both checks the patient and keeps its key.
        let touched = self
            .query(
                "WITH p AS (SELECT patient_id FROM patients WHERE patient_id = $1),
                 up AS (
                     INSERT INTO research_consent (patient_id, consent, changed_at, device_id, received_at)
                     SELECT patient_id, $2, $3, $4, $5 FROM p
                     ON CONFLICT (patient_id) DO UPDATE SET
                         consent = excluded.consent, changed_at = excluded.changed_at,
                         device_id = excluded.device_id, received_at = excluded.received_at
                     WHERE excluded.changed_at >= research_consent.changed_at
                     RETURNING 1)
                 SELECT (SELECT COUNT(*) FROM p)",
                &[
                    &c.patient_id,
                    &c.consent,
                    &c.changed_at,
                    &c.device_id,
                    &c.received_at,
                ],
            )
            .await?;
        let known: i64 = touched
            .first()
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(|e| StorageError::Internal(e.to_string()))?
            .unwrap_or(0);
        if known == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    pub(super) async fn consenting_patients_impl(&self) -> Result<Vec<Uuid>, StorageError> {
        let rows = self
            .query(
                "SELECT patient_id FROM research_consent WHERE consent ORDER BY patient_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                r.try_get(0)
                    .map_err(|e| StorageError::Internal(e.to_string()))
            })
            .collect()
    }

    pub(super) async fn add_analyst_impl(&self, a: NewAnalyst) -> Result<(), StorageError> {
        let inserted = self
            .execute(
                "INSERT INTO analysts (analyst_id, name, token_hash, created_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (analyst_id) DO NOTHING",
                &[
                    &a.analyst_id,
                    &a.name,
                    &a.token_hash.as_bytes().as_slice(),
                    &a.created_at,
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(StorageError::Conflict("the analyst exists already".into()));
        }
        Ok(())
    }

    pub(super) async fn analyst_credentials_impl(
        &self,
        analyst_id: Uuid,
    ) -> Result<Option<AnalystCredentials>, StorageError> {
        let rows = self
            .query(
                "SELECT token_hash, name, revoked_at IS NOT NULL FROM analysts
                 WHERE analyst_id = $1",
                &[&analyst_id],
            )
            .await?;
        let credentials = |r: &Row| -> Result<AnalystCredentials, Fault> {
            Ok(AnalystCredentials {
                token_hash: hash_from_bytes(r.try_get(0)?)?,
                name: r.try_get(1)?,
                revoked: r.try_get(2)?,
            })
        };
        Ok(rows.first().map(credentials).transpose()?)
    }

    pub(super) async fn revoke_analyst_impl(
        &self,
        analyst_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let changed = self
            .execute(
                "UPDATE analysts SET revoked_at = COALESCE(revoked_at, $2) WHERE analyst_id = $1",
                &[&analyst_id, &now],
            )
            .await?;
        some_row(changed)?;
        Ok(())
    }

    pub(super) async fn export_entries_impl(
        &self,
        patient_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<ExportEntry>, StorageError> {
        let limit = i64::from(limit);
        retrying(|| {
            // One snapshot: the page and the histories of its edited entries agree.
            self.in_transaction(IsolationLevel::RepeatableRead, async |tx| {
                let rows = match after {
                    Some(after) => {
                        tx.query(
                            &format!(
                                "SELECT {EXPORT_COLUMNS} FROM entries
                                 WHERE patient_id = $1 AND entry_id > $2
                                 ORDER BY entry_id LIMIT $3"
                            ),
                            &[&patient_id, &after, &limit],
                        )
                        .await?
                    }
                    None => {
                        tx.query(
                            &format!(
                                "SELECT {EXPORT_COLUMNS} FROM entries WHERE patient_id = $1
                                 ORDER BY entry_id LIMIT $2"
                            ),
                            &[&patient_id, &limit],
                        )
                        .await?
                    }
                };
                let mut entries = rows
                    .iter()
                    .map(export_entry)
                    .collect::<Result<Vec<_>, _>>()?;
                let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                    return Ok(entries);
                };
                // Most entries are made by one operation; only the others need their history.
                let history = tx
                    .query(
                        &format!(
                            "SELECT {FEED_COLUMNS} FROM ops WHERE patient_id = $1 AND entry_id IN (
                                 SELECT entry_id FROM ops
                                 WHERE patient_id = $1 AND entry_id BETWEEN $2 AND $3
                                 GROUP BY entry_id HAVING COUNT(*) > 1)
                             ORDER BY entry_id, cursor"
                        ),
                        &[&patient_id, &first.entry_id, &last.entry_id],
                    )
                    .await?;
                for r in &history {
                    let op = pulled_op(r)?;
                    if let Ok(at) = entries.binary_search_by_key(&op.op.entry_id, |e| e.entry_id) {
                        entries[at].ops.push(op);
                    }
                }
                Ok(entries)
            })
        })
        .await
    }

    pub(super) async fn export_entries_by_day_impl(
        &self,
        patient_id: Uuid,
        page: u32,
    ) -> Result<ExportPages, StorageError> {
        // Taken here, so that a database out of reach fails the call rather than the first page.
        let mut client = self.pool.get().await.map_err(Fault::from)?;
        let (sender, pages) = ExportPages::channel();
        tokio::spawn(async move {
            let read = read_by_day(&mut client, patient_id, page, &sender).await;
            sender.end(read.map_err(StorageError::from)).await;
        });
        Ok(pages)
    }

    pub(super) async fn first_entry_day_impl(
        &self,
        patient_id: Uuid,
    ) -> Result<Option<chrono::NaiveDate>, StorageError> {
        let rows = self
            .query(
                "SELECT MIN(day) FROM entries WHERE patient_id = $1 AND NOT deleted",
                &[&patient_id],
            )
            .await?;
        rows.first()
            .map(|r| r.try_get::<_, Option<chrono::NaiveDate>>(0))
            .transpose()
            .map(Option::flatten)
            .map_err(|e| StorageError::Internal(e.to_string()))
    }

    pub(super) async fn record_export_access_impl(
        &self,
        records: Vec<AccessRecord>,
    ) -> Result<(), StorageError> {
        retrying(|| {
            self.in_transaction(IsolationLevel::ReadCommitted, async |tx| {
                let insert = tx
                    .prepare(
                        "INSERT INTO access_log (patient_id, log_id, provider_id, what, at,
                             address, break_glass)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .await?;
                for record in &records {
                    tx.execute(
                        &insert,
                        &[
                            &record.patient_id,
                            &Uuid::now_v7(),
                            &record.provider_id,
                            &record.what,
                            &record.at,
                            &record.address,
                            &record.break_glass,
                        ],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }

    pub(super) async fn record_export_impl(&self, r: ExportRecord) -> Result<(), StorageError> {
        let patients = i64::try_from(r.patients).unwrap_or(i64::MAX);
        self.execute(
            "INSERT INTO export_log (export_id, exported_at, actor, via, format, identified,
                                     options, patients, row_counts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &r.export_id,
                &r.exported_at,
                &r.actor,
                &r.via,
                &r.format,
                &r.identified,
                &Json(&r.options),
                &patients,
                &Json(&r.row_counts),
            ],
        )
        .await?;
        Ok(())
    }

    pub(super) async fn export_log_impl(
        &self,
        limit: u32,
    ) -> Result<Vec<ExportRecord>, StorageError> {
        let rows = self
            .query(
                "SELECT export_id, exported_at, actor, via, format, identified, options,
                        patients, row_counts
                 FROM export_log ORDER BY exported_at DESC, export_id DESC LIMIT $1",
                &[&i64::from(limit)],
            )
            .await?;
        let record = |r: &Row| -> Result<ExportRecord, Fault> {
            let Json(options): Json<serde_json::Value> = r.try_get(6)?;
            let patients: i64 = r.try_get(7)?;
            let Json(row_counts): Json<serde_json::Value> = r.try_get(8)?;
            Ok(ExportRecord {
                export_id: r.try_get(0)?,
                exported_at: r.try_get(1)?,
                actor: r.try_get(2)?,
                via: r.try_get(3)?,
                format: r.try_get(4)?,
                identified: r.try_get(5)?,
                options,
                patients: u64::try_from(patients).unwrap_or(0),
                row_counts,
            })
        };
        Ok(rows.iter().map(record).collect::<Result<_, _>>()?)
    }
}
