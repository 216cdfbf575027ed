//! The embedded backend: one SQLite file per server, `DIR/heeldiary-server.sqlite3`.
//!
//! One connection behind a mutex serves every request; blocking calls run on tokio's blocking
//! pool. The file is opened in WAL mode with foreign keys on, and migrated at open from the
//! numbered files in `schema/server-sqlite/`, all in one transaction. A database written by a
//! newer server is refused, never changed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use heeldiary_core::wire::{PulledOp, PushResult};
use heeldiary_core::{EntryState, Op};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};
use uuid::Uuid;

use super::{
    code_use, device_id_taken, from_i64, hash_from_bytes, parse_hlc, pending, to_i64, CodeUse,
    DeviceCredentials, DeviceInfo, Migration, NewCode, NewDevice, NewPatient, PullPage, PushPlan,
    Storage, StorageError, StoredEntry, StoredIdentities,
};
use crate::auth::SecretHash;

/// Every migration, in order. Add the next file here; the upgrade test covers it by itself.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init",
        sql: include_str!("../../../../schema/server-sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_code_used_by",
        sql: include_str!("../../../../schema/server-sqlite/0002_code_used_by.sql"),
    },
];

/// How long a statement waits for a lock before the request fails as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite backend. Cloning shares the connection.
#[derive(Clone)]
pub struct SqliteStorage {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage").finish_non_exhaustive()
    }
}

impl SqliteStorage {
    /// Name of the database file inside the data directory.
    pub const FILE_NAME: &'static str = "heeldiary-server.sqlite3";

    /// Opens (creating if needed) the database in directory `dir`, creating the directory too,
    /// and brings its schema up to date.
    ///
    /// # Failure
    /// [`StorageError::SchemaTooNew`] for a database written by a newer server;
    /// [`StorageError::Internal`] if the directory or file cannot be used.
    pub async fn open_dir(dir: &Path) -> Result<Self, StorageError> {
        let dir = dir.to_owned();
        Self::open_with(move || {
            std::fs::create_dir_all(&dir).map_err(|e| {
                StorageError::Internal(format!("cannot create {}: {e}", dir.display()))
            })?;
            let conn = Connection::open(dir.join(Self::FILE_NAME))?;
            // Before WAL: switching the journal mode takes a lock that another process (an
            // admin command beside a running server) may hold for a moment.
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            Ok(conn)
        })
        .await
    }

    /// A private in-memory database, for tests.
    pub async fn open_in_memory() -> Result<Self, StorageError> {
        Self::open_with(|| Ok(Connection::open_in_memory()?)).await
    }

    async fn open_with(
        connect: impl FnOnce() -> Result<Connection, StorageError> + Send + 'static,
    ) -> Result<Self, StorageError> {
        let conn = blocking(move || {
            let mut conn = connect()?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            migrate(&mut conn, MIGRATIONS)?;
            Ok(conn)
        })
        .await?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let conn = Arc::clone(&self.conn);
        blocking(move || {
            // A panic while holding the lock rolled its transaction back; the connection is fine.
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Internal(format!("storage task failed: {e}")))?
}

/// Applies the migrations in `migrations` that the database lacks, in one transaction.
fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<(), StorageError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER NOT NULL PRIMARY KEY,
             name       TEXT    NOT NULL,
             applied_at TEXT    NOT NULL
         )",
    )?;
    let current: u32 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for m in pending(migrations, current)? {
        tx.execute_batch(m.sql)
            .map_err(|e| StorageError::Internal(format!("migration {} failed: {e}", m.name)))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, time_text(Utc::now())],
        )?;
    }
    tx.commit()?;
    Ok(())
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StorageError::Unavailable(e.to_string())
            }
            _ => StorageError::Internal(e.to_string()),
        }
    }
}

fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, StorageError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StorageError::Internal(format!("stored time `{text}` unreadable: {e}")))
}

fn parse_uuid(text: &str) -> Result<Uuid, StorageError> {
    Uuid::parse_str(text)
        .map_err(|e| StorageError::Internal(format!("stored id `{text}` unreadable: {e}")))
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StorageError> {
    serde_json::from_str(text)
        .map_err(|e| StorageError::Internal(format!("stored JSON unreadable: {e}")))
}

/// Columns read by [`pulled_op`], in order.
const OP_COLUMNS: &str = "cursor, device_id, device_seq, entry_id, hlc, patch, received_at";

/// Rows of [`OP_COLUMNS`] as raw values; decoded outside rusqlite's row callback.
type OpRow = (i64, String, i64, String, String, String, String);

/// `device_id, role, label, enrolled_at, revoked_at` of a device row.
type DeviceRow = (String, String, Option<String>, String, Option<String>);

fn op_row(r: &Row<'_>) -> rusqlite::Result<OpRow> {
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

fn pulled_op(row: OpRow) -> Result<PulledOp, StorageError> {
    let (cursor, device_id, device_seq, entry_id, hlc, patch, received_at) = row;
    Ok(PulledOp {
        cursor: from_i64(cursor)?,
        received_at: parse_time(&received_at)?,
        op: Op {
            entry_id: parse_uuid(&entry_id)?,
            device_id: parse_uuid(&device_id)?,
            device_seq: from_i64(device_seq)?,
            hlc: parse_hlc(&hlc)?,
            patch: parse_json(&patch)?,
        },
    })
}

fn push_tx(
    conn: &mut Connection,
    patient_id: Uuid,
    ops: &[Op],
    received_at: DateTime<Utc>,
) -> Result<Vec<PushResult>, StorageError> {
    let patient = patient_id.to_string();
    let received = time_text(received_at);
    // IMMEDIATE takes the write lock at once: pushes serialize and cursors commit in order.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let last_cursor: i64 = tx
        .query_row(
            "SELECT last_cursor FROM patients WHERE patient_id = ?1",
            [&patient],
            |r| r.get(0),
        )
        .optional()?
        .ok_or(StorageError::NotFound)?;
    let mut stored = StoredIdentities::new();
    {
        let mut find = tx.prepare_cached(
            "SELECT entry_id, hlc FROM ops
             WHERE patient_id = ?1 AND device_id = ?2 AND device_seq = ?3",
        )?;
        for op in ops {
            let key = (op.device_id, to_i64(op.device_seq, "device_seq")?);
            let found: Option<(String, String)> = find
                .query_row(params![patient, key.0.to_string(), key.1], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            if let Some((entry_id, hlc)) = found {
                stored.insert(key, (parse_uuid(&entry_id)?, hlc));
            }
        }
    }
    let plan = PushPlan::new(ops, last_cursor, &stored)?;
    let Some(new_last) = plan.last_cursor() else {
        return Ok(plan.results);
    };
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO ops (patient_id, cursor, device_id, device_seq, entry_id, hlc, patch,
                              received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (cursor, op) in &plan.applied {
            let patch = serde_json::to_string(&op.patch)
                .map_err(|e| StorageError::Internal(e.to_string()))?;
            insert.execute(params![
                patient,
                cursor,
                op.device_id.to_string(),
                to_i64(op.device_seq, "device_seq")?,
                op.entry_id.to_string(),
                op.hlc.to_string(),
                patch,
                received
            ])?;
        }
        let mut load =
            tx.prepare_cached("SELECT state FROM entries WHERE patient_id = ?1 AND entry_id = ?2")?;
        let mut states = BTreeMap::new();
        for entry_id in plan.entry_ids() {
            let text: Option<String> = load
                .query_row(params![patient, entry_id.to_string()], |r| r.get(0))
                .optional()?;
            if let Some(text) = text {
                states.insert(entry_id, parse_json::<EntryState>(&text)?);
            }
        }
        let mut save = tx.prepare_cached(
            "INSERT INTO entries (patient_id, entry_id, day, deleted, state, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (patient_id, entry_id) DO UPDATE SET
                 day = excluded.day, deleted = excluded.deleted, state = excluded.state,
                 updated_at = excluded.updated_at",
        )?;
        for (entry_id, state) in &plan.merge(states) {
            let json =
                serde_json::to_string(state).map_err(|e| StorageError::Internal(e.to_string()))?;
            save.execute(params![
                patient,
                entry_id.to_string(),
                state.day(),
                state.is_deleted(),
                json,
                received
            ])?;
        }
    }
    tx.execute(
        "UPDATE patients SET last_cursor = ?2 WHERE patient_id = ?1",
        params![patient, new_last],
    )?;
    tx.commit()?;
    Ok(plan.results)
}

fn enrol_tx(
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
    let taken = tx
        .prepare_cached("SELECT 1 FROM devices WHERE device_id = ?1")?
        .exists([&device_id])?;
    if taken {
        return Err(device_id_taken());
    }
    let now = time_text(now);
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
    tx.execute(
        "UPDATE enrolment_codes SET used_at = ?2, used_by = ?3 WHERE code_hash = ?1",
        params![code_hash.as_bytes().as_slice(), now, device_id],
    )?;
    tx.commit()?;
    parse_uuid(&patient)
}

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
            let tx = conn.transaction()?;
            let patient = code.patient_id.to_string();
            let known = tx
                .prepare_cached("SELECT 1 FROM patients WHERE patient_id = ?1")?
                .exists([&patient])?;
            if !known {
                return Err(StorageError::NotFound);
            }
            tx.execute(
                "INSERT INTO enrolment_codes (code_hash, patient_id, expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    code.code_hash.as_bytes().as_slice(),
                    patient,
                    time_text(code.expires_at),
                    time_text(code.created_at)
                ],
            )?;
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
        self.call(move |conn| {
            let row: Option<(Vec<u8>, String, Option<String>)> = conn
                .prepare_cached(
                    "SELECT token_hash, role, revoked_at FROM devices
                     WHERE patient_id = ?1 AND device_id = ?2",
                )?
                .query_row(
                    params![patient_id.to_string(), device_id.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            row.map(|(hash, role, revoked_at)| {
                Ok(DeviceCredentials {
                    token_hash: hash_from_bytes(hash)?,
                    role: role.parse()?,
                    revoked: revoked_at.is_some(),
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
            if changed == 0 {
                return Err(StorageError::NotFound);
            }
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

    async fn push(
        &self,
        patient_id: Uuid,
        ops: Vec<Op>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<PushResult>, StorageError> {
        self.call(move |conn| push_tx(conn, patient_id, &ops, received_at))
            .await
    }

    async fn pull(
        &self,
        patient_id: Uuid,
        after: u64,
        limit: u32,
    ) -> Result<PullPage, StorageError> {
        let after = to_i64(after, "cursor")?;
        self.call(move |conn| {
            let rows: Vec<OpRow> = conn
                .prepare_cached(&format!(
                    "SELECT {OP_COLUMNS} FROM ops WHERE patient_id = ?1 AND cursor > ?2
                     ORDER BY cursor LIMIT ?3"
                ))?
                .query_map(
                    params![patient_id.to_string(), after, i64::from(limit) + 1],
                    op_row,
                )?
                .collect::<Result<_, _>>()?;
            let has_more = rows.len() > limit as usize;
            let ops = rows
                .into_iter()
                .take(limit as usize)
                .map(pulled_op)
                .collect::<Result<_, _>>()?;
            Ok(PullPage { ops, has_more })
        })
        .await
    }

    async fn entry(
        &self,
        patient_id: Uuid,
        entry_id: Uuid,
    ) -> Result<Option<StoredEntry>, StorageError> {
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
                    "SELECT {OP_COLUMNS} FROM ops WHERE patient_id = ?1 AND entry_id = ?2
                     ORDER BY cursor"
                ))?
                .query_map([&patient, &entry], op_row)?
                .collect::<Result<_, _>>()?;
            Ok(Some(StoredEntry {
                state: parse_json(&state)?,
                ops: rows.into_iter().map(pulled_op).collect::<Result<_, _>>()?,
            }))
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

    /// The schema as SQLite records it, for comparing two databases.
    fn schema_of(conn: &Connection) -> Vec<(String, String, Option<String>)> {
        conn.prepare(
            "SELECT type, name, sql FROM sqlite_master
             WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    fn versions_of(conn: &Connection) -> Vec<u32> {
        conn.prepare("SELECT version FROM schema_migrations ORDER BY version")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn every_earlier_version_upgrades_to_the_fresh_schema() {
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh, MIGRATIONS).unwrap();
        for applied in 0..MIGRATIONS.len() {
            let mut old = Connection::open_in_memory().unwrap();
            migrate(&mut old, &MIGRATIONS[..applied]).unwrap();
            assert_eq!(versions_of(&old).len(), applied);
            migrate(&mut old, MIGRATIONS).unwrap();
            assert_eq!(schema_of(&old), schema_of(&fresh), "upgrade from {applied}");
            assert_eq!(versions_of(&old), versions_of(&fresh));
        }
        // Opening an up-to-date database again changes nothing.
        migrate(&mut fresh, MIGRATIONS).unwrap();
        assert_eq!(versions_of(&fresh).len(), MIGRATIONS.len());
    }

    #[test]
    fn a_database_from_a_newer_server_is_refused_and_left_alone() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, MIGRATIONS).unwrap();
        let future = MIGRATIONS.len() as u32 + 1;
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?1, 'future', '2100-01-01T00:00:00.000000Z')",
            [future],
        )
        .unwrap();
        let before = schema_of(&conn);
        let err = migrate(&mut conn, MIGRATIONS).unwrap_err();
        assert!(
            matches!(err, StorageError::SchemaTooNew { found, supported }
                if found == future && supported == future - 1),
            "{err}"
        );
        assert!(err.to_string().contains("newer"), "{err}");
        assert_eq!(schema_of(&conn), before);
    }

    #[tokio::test]
    async fn the_database_file_is_created_in_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested").join("data");
        let storage = SqliteStorage::open_dir(&data).await.unwrap();
        storage.health().await.unwrap();
        assert!(data.join(SqliteStorage::FILE_NAME).exists());
        drop(storage);
        // Reopening finds the schema in place.
        SqliteStorage::open_dir(&data)
            .await
            .unwrap()
            .health()
            .await
            .unwrap();
    }
}
