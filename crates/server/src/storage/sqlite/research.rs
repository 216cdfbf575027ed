//! Research consent, analysts and the export log on SQLite: the storage calls of the analyst
//! export, each one statement or one short transaction on the connection, except the by-day
//! read, which steps one patient's snapshot on a connection of its own.

use crate::storage::some_row;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::transactions::{
    op_row, parse_json, parse_time, parse_uuid, time_text, FeedDecoder, OpRow,
};
use super::SqliteStorage;
use crate::storage::{
    hash_from_bytes, AccessRecord, AnalystCredentials, ExportEntry, ExportPages, ExportRecord,
    NewAnalyst, ResearchConsent, StorageError, FEED_COLUMNS,
};

/// A text column read in place, without a copy.
fn text<'r>(row: &'r rusqlite::Row<'_>, column: usize) -> Result<&'r str, StorageError> {
    row.get_ref(column)?
        .as_str()
        .map_err(|e| StorageError::Internal(format!("stored text unreadable: {e}")))
}

fn parse_day(day: &str) -> Result<NaiveDate, StorageError> {
    heeldiary_core::calendar::parse_day(day)
        .map_err(|e| StorageError::Internal(format!("stored day `{day}` unreadable: {e}")))
}

/// The columns [`export_entry`] reads.
const EXPORT_COLUMNS: &str = "entry_id, deleted, state, updated_at, day";

/// Collects rows into pages of a fixed size and hands each full one to `send`.
struct PageFiller<F> {
    page: Vec<ExportEntry>,
    size: usize,
    send: F,
}

impl<F: FnMut(Vec<ExportEntry>) -> bool> PageFiller<F> {
    /// Pages of `size` entries (at least one).
    fn new(size: u32, send: F) -> Self {
        let size = (size as usize).max(1);
        PageFiller {
            page: Vec::with_capacity(size),
            size,
            send,
        }
    }

    /// Adds an entry; `false` when a full page found the reader gone.
    fn push(&mut self, entry: ExportEntry) -> bool {
        self.page.push(entry);
        if self.page.len() < self.size {
            return true;
        }
        let full = std::mem::replace(&mut self.page, Vec::with_capacity(self.size));
        (self.send)(full)
    }

    /// The entries of no full page.
    fn rest(self) -> Vec<ExportEntry> {
        self.page
    }
}

/// Hands the by-day pages of a patient (see
/// [`Storage::export_entries_by_day`](crate::storage::Storage::export_entries_by_day)) to
/// `send` as it steps the rows, until `send` answers `false`, and returns the entries of no
/// full page, to send with the end. One read transaction: in WAL mode
/// both statements see the snapshot of the first.
fn read_by_day(
    conn: &mut Connection,
    patient_id: Uuid,
    page: u32,
    send: impl FnMut(Vec<ExportEntry>) -> bool,
) -> Result<Vec<ExportEntry>, StorageError> {
    let tx = conn.transaction()?;
    let patient = patient_id.to_string();
    let mut pages = PageFiller::new(page, send);
    // Days are fixed-width text and ids hyphenated lowercase: text order is their order, and
    // the day index (which holds the id, the key of the table) walks it, the entries without a
    // day first.
    for sql in [
        "WHERE patient_id = ?1 AND day IS NULL AND deleted = 1 ORDER BY entry_id",
        "WHERE patient_id = ?1 AND day IS NOT NULL ORDER BY day, entry_id",
    ] {
        let mut statement =
            tx.prepare_cached(&format!("SELECT {EXPORT_COLUMNS} FROM entries {sql}"))?;
        let mut rows = statement.query([&patient])?;
        while let Some(row) = rows.next()? {
            if !pages.push(export_entry(row)?) {
                return Ok(Vec::new());
            }
        }
    }
    tx.commit()?;
    Ok(pages.rest())
}

/// One stored entry as the export reads it, without its operations.
fn export_entry(row: &rusqlite::Row<'_>) -> Result<ExportEntry, StorageError> {
    let deleted: bool = row.get(1)?;
    Ok(ExportEntry {
        entry_id: parse_uuid(text(row, 0)?)?,
        day: row
            .get_ref(4)?
            .as_str_or_null()
            .map_err(|e| StorageError::Internal(format!("stored day unreadable: {e}")))?
            .map(parse_day)
            .transpose()?,
        deleted,
        // A deleted entry's values are not exported: its state is not copied.
        state: if deleted {
            String::new()
        } else {
            text(row, 2)?.to_owned()
        },
        updated_at: parse_time(text(row, 3)?)?,
        ops: Vec::new(),
    })
}

impl SqliteStorage {
    pub(super) async fn set_research_consent_impl(
        &self,
        c: ResearchConsent,
    ) -> Result<(), StorageError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let patient = c.patient_id.to_string();
            let known = tx
                .prepare_cached("SELECT 1 FROM patients WHERE patient_id = ?1")?
                .exists([&patient])?;
            if !known {
                return Err(StorageError::NotFound);
            }
            // Fixed-width UTC text: text order is time order, so the later answer wins.
            tx.execute(
                "INSERT INTO research_consent (patient_id, consent, changed_at, device_id, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (patient_id) DO UPDATE SET
                     consent = excluded.consent, changed_at = excluded.changed_at,
                     device_id = excluded.device_id, received_at = excluded.received_at
                 WHERE excluded.changed_at >= research_consent.changed_at",
                params![
                    patient,
                    c.consent,
                    time_text(c.changed_at),
                    c.device_id.to_string(),
                    time_text(c.received_at)
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn consenting_patients_impl(&self) -> Result<Vec<Uuid>, StorageError> {
        self.call(|conn| {
            let ids: Vec<String> = conn
                .prepare_cached(
                    "SELECT patient_id FROM research_consent WHERE consent = 1 ORDER BY patient_id",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            ids.iter().map(|id| parse_uuid(id)).collect()
        })
        .await
    }

    pub(super) async fn add_analyst_impl(&self, a: NewAnalyst) -> Result<(), StorageError> {
        self.call(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO analysts (analyst_id, name, token_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (analyst_id) DO NOTHING",
                params![
                    a.analyst_id.to_string(),
                    a.name,
                    a.token_hash.as_bytes().as_slice(),
                    time_text(a.created_at)
                ],
            )?;
            if inserted == 0 {
                return Err(StorageError::Conflict("the analyst exists already".into()));
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn analyst_credentials_impl(
        &self,
        analyst_id: Uuid,
    ) -> Result<Option<AnalystCredentials>, StorageError> {
        self.call(move |conn| {
            let row: Option<(Vec<u8>, String, Option<String>)> = conn
                .prepare_cached(
                    "SELECT token_hash, name, revoked_at FROM analysts WHERE analyst_id = ?1",
                )?
                .query_row([analyst_id.to_string()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            row.map(|(hash, name, revoked_at)| {
                Ok(AnalystCredentials {
                    token_hash: hash_from_bytes(hash)?,
                    name,
                    revoked: revoked_at.is_some(),
                })
            })
            .transpose()
        })
        .await
    }

    pub(super) async fn revoke_analyst_impl(
        &self,
        analyst_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.call(move |conn| {
            let changed = conn.execute(
                "UPDATE analysts SET revoked_at = COALESCE(revoked_at, ?2) WHERE analyst_id = ?1",
                params![analyst_id.to_string(), time_text(now)],
            )?;
            some_row(changed)?;
            Ok(())
        })
        .await
    }

    pub(super) async fn export_entries_impl(
        &self,
        patient_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<ExportEntry>, StorageError> {
        self.export_read(move |conn| {
            // One read transaction: the page and the histories of its edited entries agree.
            let tx = conn.transaction()?;
            let patient = patient_id.to_string();
            // Text ids sort as the ids do, and the primary key walks them in that order.
            let after = after.map(|id| id.to_string()).unwrap_or_default();
            let mut entries = Vec::with_capacity(limit as usize);
            {
                let mut page = tx.prepare_cached(&format!(
                    "SELECT {EXPORT_COLUMNS} FROM entries
                     WHERE patient_id = ?1 AND entry_id > ?2 ORDER BY entry_id LIMIT ?3"
                ))?;
                let mut rows = page.query(params![patient, after, limit])?;
                while let Some(row) = rows.next()? {
                    entries.push(export_entry(row)?);
                }
            }
            let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                return Ok(entries);
            };
            // Most entries are made by one operation; only the others need their history, found
            // in one walk of the ops index over the page's id range. Every entry has at least one
            // operation, so as many operations as entries in the range means none was edited:
            // a count is cheaper than listing the edited ones.
            let range = params![
                patient,
                first.entry_id.to_string(),
                last.entry_id.to_string()
            ];
            let ops_in_range: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM ops
                     WHERE patient_id = ?1 AND entry_id >= ?2 AND entry_id <= ?3",
                )?
                .query_row(range, |r| r.get(0))?;
            if ops_in_range == entries.len() as i64 {
                tx.commit()?;
                return Ok(entries);
            }
            let edited: Vec<String> = tx
                .prepare_cached(
                    "SELECT entry_id FROM ops
                     WHERE patient_id = ?1 AND entry_id >= ?2 AND entry_id <= ?3
                     GROUP BY entry_id HAVING COUNT(*) > 1",
                )?
                .query_map(range, |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut history = tx.prepare_cached(&format!(
                "SELECT {FEED_COLUMNS} FROM ops WHERE patient_id = ?1 AND entry_id = ?2
                 ORDER BY cursor"
            ))?;
            let mut decoder = FeedDecoder::default();
            for id in edited {
                let entry_id = parse_uuid(&id)?;
                let ops: Vec<OpRow> = history
                    .query_map(params![patient, id], op_row)?
                    .collect::<Result<_, _>>()?;
                if let Ok(at) = entries.binary_search_by_key(&entry_id, |e| e.entry_id) {
                    entries[at].ops = ops
                        .into_iter()
                        .map(|row| decoder.pulled_op(row))
                        .collect::<Result<_, _>>()?;
                }
            }
            drop(history);
            tx.commit()?;
            Ok(entries)
        })
        .await
    }

    pub(super) async fn export_entries_by_day_impl(
        &self,
        patient_id: Uuid,
        page: u32,
    ) -> Result<ExportPages, StorageError> {
        let (sender, pages) = ExportPages::channel();
        let Some(readers) = self.export_readers.clone() else {
            // A database in memory has only its one connection, which writes too: it is read
            // whole, then handed over, so that it is never held while the caller takes pages.
            let read = self
                .read(move |conn| {
                    let mut full = Vec::new();
                    let rest = read_by_day(conn, patient_id, page, |p| {
                        full.push(p);
                        true
                    })?;
                    Ok((full, rest))
                })
                .await;
            tokio::spawn(async move {
                match read {
                    Ok((full, rest)) => {
                        for p in full {
                            if !sender.send(p).await {
                                return;
                            }
                        }
                        sender.end(Ok(rest)).await;
                    }
                    Err(e) => sender.end(Err(e)).await,
                }
            });
            return Ok(pages);
        };
        tokio::task::spawn_blocking(move || {
            let read = readers.take().and_then(|mut conn| {
                let read = read_by_day(&mut conn, patient_id, page, |p| sender.blocking_send(p));
                readers.give_back(conn);
                read
            });
            sender.blocking_end(read);
        });
        Ok(pages)
    }

    pub(super) async fn first_entry_day_impl(
        &self,
        patient_id: Uuid,
    ) -> Result<Option<chrono::NaiveDate>, StorageError> {
        self.call(move |conn| {
            let day: Option<String> = conn
                .prepare_cached(
                    "SELECT MIN(day) FROM entries WHERE patient_id = ?1 AND deleted = 0",
                )?
                .query_row([patient_id.to_string()], |r| r.get(0))?;
            day.as_deref().map(parse_day).transpose()
        })
        .await
    }

    pub(super) async fn record_export_access_impl(
        &self,
        records: Vec<AccessRecord>,
    ) -> Result<(), StorageError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO access_log (patient_id, log_id, provider_id, what, at, address,
                         break_glass)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for record in &records {
                    insert.execute(params![
                        record.patient_id.to_string(),
                        Uuid::now_v7().to_string(),
                        record.provider_id.to_string(),
                        record.what,
                        time_text(record.at),
                        record.address,
                        record.break_glass
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn record_export_impl(&self, r: ExportRecord) -> Result<(), StorageError> {
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO export_log (export_id, exported_at, actor, via, format, identified,
                                         options, patients, row_counts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    r.export_id.to_string(),
                    time_text(r.exported_at),
                    r.actor,
                    r.via,
                    r.format,
                    r.identified,
                    r.options.to_string(),
                    i64::try_from(r.patients).unwrap_or(i64::MAX),
                    r.row_counts.to_string()
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn export_log_impl(
        &self,
        limit: u32,
    ) -> Result<Vec<ExportRecord>, StorageError> {
        type Row = (
            String,
            String,
            String,
            String,
            String,
            bool,
            String,
            i64,
            String,
        );
        self.call(move |conn| {
            let rows: Vec<Row> = conn
                .prepare_cached(
                    "SELECT export_id, exported_at, actor, via, format, identified, options,
                            patients, row_counts
                     FROM export_log ORDER BY exported_at DESC, export_id DESC LIMIT ?1",
                )?
                .query_map([limit], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(
                    |(id, at, actor, via, format, identified, options, patients, counts)| {
                        Ok(ExportRecord {
                            export_id: parse_uuid(&id)?,
                            exported_at: parse_time(&at)?,
                            actor,
                            via,
                            format,
                            identified,
                            options: parse_json(&options)?,
                            patients: u64::try_from(patients).unwrap_or(0),
                            row_counts: parse_json(&counts)?,
                        })
                    },
                )
                .collect()
        })
        .await
    }
}
