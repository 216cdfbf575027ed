//! The scale-out backend: PostgreSQL through a pool of `tokio-postgres` connections.
//!
//! The schema (`schema/server-postgres/`) keeps every patient table keyed by `patient_id` first,
//! so it runs unchanged on one server, on a partitioned one, or on a distributed PostgreSQL with
//! `patient_id` as distribution column (`docs/postgres.md`). Migrations run at open, in one
//! transaction under an advisory lock so that servers starting together do not race; a database
//! written by a newer server is refused, never changed.
//!
//! Pushes of one patient serialize on the patient's counter row (`last_cursor`), which they hold
//! locked from their first statement to their commit: cursors are handed out and become visible
//! in the same order, so a puller that saw cursor `n` never misses a lower one committed later.
//!
//! Failures are sorted for the client: a lost connection, a pool timeout or a server shutting
//! down is [`StorageError::Unavailable`] (HTTP 503, retried by devices; a transaction cut short
//! wrote nothing); a serialization failure or deadlock is retried here a few times first; the
//! rest is [`StorageError::Internal`]. The pool checks each connection as it hands it out and
//! replaces dead ones, so the server serves again as soon as the database is back.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Transaction,
};
use heeldiary_core::wire::{PulledOp, PushResult};
use heeldiary_core::{EntryState, Op, Patch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{IsolationLevel, NoTls, Row};
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
        sql: include_str!("../../../../schema/server-postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_code_used_by",
        sql: include_str!("../../../../schema/server-postgres/0002_code_used_by.sql"),
    },
];

/// Schema version a fresh PostgreSQL database gets.
pub const POSTGRES_SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Advisory lock key held while migrating ("heeldiar" in ASCII): one server migrates, the others
/// wait and then find the schema up to date.
const MIGRATION_LOCK: i64 = 0x6865_656c_6469_6172;

/// First key of the two-key advisory lock taken per device id while enrolling. Device ids are
/// unique across patients, which no per-patient unique index can enforce on a sharded table.
const ENROL_LOCK: i32 = 0x6865_656c;

/// Attempts of a transaction that failed on a serialization conflict or deadlock.
const CONFLICT_ATTEMPTS: u32 = 4;

/// Columns read by [`pulled_op`], in order.
const OP_COLUMNS: &str = "cursor, device_id, device_seq, entry_id, hlc, patch, received_at";

/// Size and patience of the connection pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most connections open at once.
    pub max_size: usize,
    /// How long a request waits for a connection (free or new) before it fails as unavailable.
    pub timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 16,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The PostgreSQL backend. Cloning shares the pool.
#[derive(Clone)]
pub struct PostgresStorage {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's configuration holds the password: show only its size.
        f.debug_struct("PostgresStorage")
            .field("max_size", &self.pool.status().max_size)
            .finish_non_exhaustive()
    }
}

impl PostgresStorage {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`, or the
    /// `key=value` form) and brings its schema up to date.
    ///
    /// # Failure
    /// [`StorageError::Internal`] for a URL that cannot be parsed (the message never repeats
    /// it) or a migration that fails; [`StorageError::Unavailable`] if the database cannot be
    /// reached; [`StorageError::SchemaTooNew`] for a database written by a newer server.
    pub async fn connect(url: &str, options: &PoolOptions) -> Result<Self, StorageError> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StorageError::Internal(format!("invalid database URL: {e}")))?;
        Self::connect_with(config, options).await
    }

    /// Like [`connect`](Self::connect), from a parsed configuration.
    pub async fn connect_with(
        mut config: tokio_postgres::Config,
        options: &PoolOptions,
    ) -> Result<Self, StorageError> {
        let storage = Self {
            pool: Self::pool(&mut config, options)?,
        };
        retrying(|| storage.migrate(MIGRATIONS)).await?;
        Ok(storage)
    }

    /// A pool on `config` that connects lazily; nothing is checked yet.
    fn pool(
        config: &mut tokio_postgres::Config,
        options: &PoolOptions,
    ) -> Result<Pool, StorageError> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.timeout);
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // A pooled connection is pinged (an empty query) at check-out: after a restart
                // of the database or a cut, dead connections are dropped and replaced there
                // rather than failing the next requests. One round trip, small next to a push.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        Pool::builder(manager)
            .max_size(options.max_size.max(1))
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StorageError::Internal(format!("cannot build the pool: {e}")))
    }

    /// Applies the migrations in `migrations` that the database lacks, in one transaction.
    async fn migrate(&self, migrations: &[Migration]) -> Result<(), Fault> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    integer     NOT NULL PRIMARY KEY,
                 name       text        NOT NULL,
                 applied_at timestamptz NOT NULL
             )",
        )
        .await?;
        let current: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .try_get(0)?;
        let current = u32::try_from(current)
            .map_err(|_| StorageError::Internal(format!("schema version {current} < 0")))?;
        for m in pending(migrations, current)? {
            tx.batch_execute(m.sql).await.map_err(|e| {
                StorageError::Internal(format!("migration {} failed: {}", m.name, describe(&e)))
            })?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())",
                &[&(m.version as i32), &m.name],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs `work` in a transaction of its own at `isolation` and commits it.
    async fn in_transaction<T>(
        &self,
        isolation: IsolationLevel,
        work: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        let mut client = self.pool.get().await?;
        let tx = client
            .build_transaction()
            .isolation_level(isolation)
            .start()
            .await?;
        let value = work(&tx).await?;
        tx.commit().await?;
        Ok(value)
    }

    /// Runs one statement on a pooled connection (retried after a conflict) and returns the
    /// number of rows it changed.
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StorageError> {
        retrying(|| async {
            let client = self.pool.get().await?;
            Ok(client
                .execute(&client.prepare_cached(sql).await?, params)
                .await?)
        })
        .await
    }

    /// Runs one query on a pooled connection (retried after a conflict) and returns its rows.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StorageError> {
        retrying(|| async {
            let client = self.pool.get().await?;
            Ok(client
                .query(&client.prepare_cached(sql).await?, params)
                .await?)
        })
        .await
    }

    async fn push_once(
        &self,
        patient_id: Uuid,
        ops: &[Op],
        received_at: DateTime<Utc>,
    ) -> Result<Vec<PushResult>, Fault> {
        let (devices, seqs): (Vec<Uuid>, Vec<i64>) = ops
            .iter()
            .map(|op| Ok((op.device_id, to_i64(op.device_seq, "device_seq")?)))
            .collect::<Result<Vec<_>, StorageError>>()?
            .into_iter()
            .unzip();
        self.in_transaction(IsolationLevel::ReadCommitted, async |tx| {
            // The lock on the counter row serializes this patient's pushes until commit, which
            // also makes the duplicate check below exact. (FOR NO KEY UPDATE, the lock an
            // UPDATE of the counter takes anyway, leaves the foreign-key checks of other
            // writers to this patient unblocked.)
            let last_cursor: i64 = tx
                .query_opt(
                    &tx.prepare_cached(
                        "SELECT last_cursor FROM patients WHERE patient_id = $1
                         FOR NO KEY UPDATE",
                    )
                    .await?,
                    &[&patient_id],
                )
                .await?
                .ok_or(StorageError::NotFound)?
                .try_get(0)?;
            let stored: StoredIdentities = tx
                .query(
                    &tx.prepare_cached(
                        "SELECT o.device_id, o.device_seq, o.entry_id, o.hlc
                         FROM ops o
                         JOIN unnest($2::uuid[], $3::bigint[]) AS k (device_id, device_seq)
                           ON o.device_id = k.device_id AND o.device_seq = k.device_seq
                         WHERE o.patient_id = $1",
                    )
                    .await?,
                    &[&patient_id, &devices, &seqs],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok((
                        (r.try_get(0)?, r.try_get(1)?),
                        (r.try_get(2)?, r.try_get(3)?),
                    ))
                })
                .collect::<Result<_, tokio_postgres::Error>>()?;
            let plan = PushPlan::new(ops, last_cursor, &stored)?;
            let Some(new_last) = plan.last_cursor() else {
                return Ok(plan.results);
            };
            insert_ops(tx, patient_id, &plan, received_at).await?;
            let states = load_states(tx, patient_id, &plan.entry_ids()).await?;
            save_states(tx, patient_id, &plan.merge(states), received_at).await?;
            tx.execute(
                &tx.prepare_cached("UPDATE patients SET last_cursor = $2 WHERE patient_id = $1")
                    .await?,
                &[&patient_id, &new_last],
            )
            .await?;
            Ok(plan.results)
        })
        .await
    }

    async fn enrol_once(
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
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2::uuid::text))",
                &[&ENROL_LOCK, &device.device_id],
            )
            .await?;
            let taken = tx
                .query_opt(
                    "SELECT 1 FROM devices WHERE device_id = $1 LIMIT 1",
                    &[&device.device_id],
                )
                .await?;
            if taken.is_some() {
                return Err(device_id_taken().into());
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

/// Environment variable naming a PostgreSQL database for tests, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`. Tests make their own schemas in it.
pub const TEST_DATABASE_URL: &str = "HEELDIARY_TEST_DATABASE_URL";

/// Test support: a fresh schema on the database of [`TEST_DATABASE_URL`], so that tests share
/// one database without seeing each other's tables. Dropped (with everything in it) when this
/// value is dropped.
pub struct ScratchSchema {
    config: tokio_postgres::Config,
    name: String,
}

impl ScratchSchema {
    /// Creates a schema, or returns `None` with a loud note on stderr when [`TEST_DATABASE_URL`]
    /// is not set, so that `test` passes as skipped.
    ///
    /// # Panics
    /// If the variable is set but the database cannot be reached: a test run that asked for
    /// PostgreSQL must not pass without it.
    pub async fn create(test: &str) -> Option<Self> {
        let Ok(url) = std::env::var(TEST_DATABASE_URL) else {
            eprintln!("SKIPPED on PostgreSQL: {test} (set {TEST_DATABASE_URL} to run it)");
            return None;
        };
        let config = tokio_postgres::Config::from_str(&url)
            .unwrap_or_else(|e| panic!("{TEST_DATABASE_URL} is not a database URL: {e}"));
        let name = format!("t_{}", Uuid::new_v4().simple());
        run_admin_sql(&config, &format!("CREATE SCHEMA {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create a test schema: {e}"));
        Some(Self { config, name })
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A configuration whose connections work in this schema only. They carry the schema's
    /// name as `application_name`, so a test can find (and cut) exactly its own connections.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut config = self.config.clone();
        config
            .options(format!("-csearch_path={}", self.name))
            .application_name(&self.name);
        config
    }

    /// A backend on this schema, migrated.
    ///
    /// # Panics
    /// If it cannot be opened.
    pub async fn open(&self, options: &PoolOptions) -> PostgresStorage {
        PostgresStorage::connect_with(self.config(), options)
            .await
            .expect("open PostgreSQL storage")
    }

    /// Runs `sql` on a connection of its own in this schema and returns the first column of
    /// every row as text, for checks the storage API does not offer.
    ///
    /// # Panics
    /// If the statement fails.
    pub async fn query(&self, sql: &str) -> Vec<String> {
        let (client, connection) = self
            .config()
            .connect(NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(connection);
        client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    Some(row.get(0).unwrap_or_default().to_string())
                }
                _ => None,
            })
            .collect()
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let (config, sql) = (
            self.config.clone(),
            format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
        // Drop may run inside a runtime that cannot block: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(run_admin_sql(&config, &sql))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.name);
        }
    }
}

/// Runs `sql` on a connection of its own.
async fn run_admin_sql(config: &tokio_postgres::Config, sql: &str) -> Result<(), String> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| describe(&e))?;
    let task = tokio::spawn(connection);
    let result = client.batch_execute(sql).await.map_err(|e| describe(&e));
    drop(client);
    let _ = task.await;
    result
}

/// Stores the plan's new operations with one statement.
async fn insert_ops(
    tx: &Transaction<'_>,
    patient_id: Uuid,
    plan: &PushPlan<'_>,
    received_at: DateTime<Utc>,
) -> Result<(), Fault> {
    let n = plan.applied.len();
    let (mut cursors, mut devices, mut seqs) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut entries, mut stamps, mut patches) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (cursor, op) in &plan.applied {
        cursors.push(*cursor);
        devices.push(op.device_id);
        seqs.push(to_i64(op.device_seq, "device_seq")?);
        entries.push(op.entry_id);
        stamps.push(op.hlc.to_string());
        patches.push(Json(&op.patch));
    }
    // No ON CONFLICT: the duplicate check ran under the patient's lock, so a clash here is a
    // fault to report, not a repeat to hide (hiding it would leave a gap in the cursors).
    let insert = tx
        .prepare_cached(
            "INSERT INTO ops (patient_id, cursor, device_id, device_seq, entry_id, hlc, patch,
                              received_at)
             SELECT $1, c, d, s, e, h, p, $8
             FROM unnest($2::bigint[], $3::uuid[], $4::bigint[], $5::uuid[], $6::text[],
                         $7::jsonb[]) AS t (c, d, s, e, h, p)",
        )
        .await?;
    tx.execute(
        &insert,
        &[
            &patient_id,
            &cursors,
            &devices,
            &seqs,
            &entries,
            &stamps,
            &patches,
            &received_at,
        ],
    )
    .await?;
    Ok(())
}

/// The stored states of those of `entry_ids` that exist.
async fn load_states(
    tx: &Transaction<'_>,
    patient_id: Uuid,
    entry_ids: &[Uuid],
) -> Result<BTreeMap<Uuid, EntryState>, Fault> {
    let load = tx
        .prepare_cached(
            "SELECT entry_id, state FROM entries WHERE patient_id = $1 AND entry_id = ANY ($2)",
        )
        .await?;
    tx.query(&load, &[&patient_id, &entry_ids])
        .await?
        .iter()
        .map(|r| {
            let Json(state) = r.try_get(1)?;
            Ok((r.try_get(0)?, state))
        })
        .collect()
}

/// Writes merged entry states with one statement.
async fn save_states(
    tx: &Transaction<'_>,
    patient_id: Uuid,
    states: &BTreeMap<Uuid, EntryState>,
    updated_at: DateTime<Utc>,
) -> Result<(), Fault> {
    let ids: Vec<Uuid> = states.keys().copied().collect();
    let days: Vec<Option<&str>> = states.values().map(EntryState::day).collect();
    let deleted: Vec<bool> = states.values().map(EntryState::is_deleted).collect();
    let json: Vec<Json<&EntryState>> = states.values().map(Json).collect();
    let save = tx
        .prepare_cached(
            "INSERT INTO entries (patient_id, entry_id, day, deleted, state, updated_at)
             SELECT $1, e, d::date, x, s, $6
             FROM unnest($2::uuid[], $3::text[], $4::boolean[], $5::jsonb[]) AS t (e, d, x, s)
             ON CONFLICT (patient_id, entry_id) DO UPDATE SET
                 day = excluded.day, deleted = excluded.deleted, state = excluded.state,
                 updated_at = excluded.updated_at",
        )
        .await?;
    tx.execute(
        &save,
        &[&patient_id, &ids, &days, &deleted, &json, &updated_at],
    )
    .await?;
    Ok(())
}

fn pulled_op(r: &Row) -> Result<PulledOp, Fault> {
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

/// Runs `attempt` again after a serialization conflict or deadlock (each attempt is a whole
/// transaction that PostgreSQL rolled back), then sorts the failure for the caller.
async fn retrying<T, F>(mut attempt: impl FnMut() -> F) -> Result<T, StorageError>
where
    F: Future<Output = Result<T, Fault>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(fault) if fault.is_conflict() && tries < CONFLICT_ATTEMPTS => {
                tracing::debug!(tries, "transaction conflict; retrying");
                tokio::time::sleep(Duration::from_millis(5 << tries)).await;
                tries += 1;
            }
            result => return result.map_err(StorageError::from),
        }
    }
}

/// A failure inside one attempt, before it is sorted into a [`StorageError`].
#[derive(Debug)]
enum Fault {
    /// From the database or the connection.
    Db(tokio_postgres::Error),
    /// No connection could be had.
    Pool(PoolError),
    /// Already decided.
    Storage(StorageError),
}

impl From<tokio_postgres::Error> for Fault {
    fn from(e: tokio_postgres::Error) -> Self {
        Fault::Db(e)
    }
}

impl From<PoolError> for Fault {
    fn from(e: PoolError) -> Self {
        Fault::Pool(e)
    }
}

impl From<StorageError> for Fault {
    fn from(e: StorageError) -> Self {
        Fault::Storage(e)
    }
}

impl Fault {
    /// A conflict between concurrent transactions that a new attempt resolves.
    fn is_conflict(&self) -> bool {
        matches!(self, Fault::Db(e) if is_conflict(e))
    }
}

/// Whether `e` is a serialization failure or deadlock: the transaction was rolled back whole and
/// may simply run again.
fn is_conflict(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE | &SqlState::T_R_DEADLOCK_DETECTED)
    )
}

impl From<Fault> for StorageError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Storage(e) => e,
            // A conflict still there after the retries is a busy database: the client may
            // try again later.
            Fault::Db(e) if is_unavailable(&e) || is_conflict(&e) => {
                StorageError::Unavailable(describe(&e))
            }
            Fault::Db(e) => StorageError::Internal(describe(&e)),
            Fault::Pool(PoolError::Backend(e)) => Fault::Db(e).into(),
            Fault::Pool(e) => StorageError::Unavailable(format!("no database connection: {e}")),
        }
    }
}

/// Whether `e` means the database cannot serve now (connection lost or refused, server shutting
/// down or overloaded) rather than a fault in the request or the data.
fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    if let Some(code) = e.code() {
        let code = code.code();
        // Class 08: connection exception; 57P0x: shutdown or crash; 53: out of resources.
        return code.starts_with("08") || code.starts_with("57P") || code.starts_with("53");
    }
    e.is_closed()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
        || e.to_string().starts_with("timeout")
}

/// The message of `e` with the database's own explanation, which `Display` leaves out. Server
/// messages name tables and constraints, never values.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match e.source() {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
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
                    "SELECT {OP_COLUMNS} FROM ops WHERE patient_id = $1 AND cursor > $2
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
                            "SELECT {OP_COLUMNS} FROM ops WHERE patient_id = $1 AND entry_id = $2
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

    async fn health(&self) -> Result<(), StorageError> {
        self.query("SELECT COUNT(*) FROM schema_migrations", &[])
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema as PostgreSQL describes it (columns, constraints, indexes), without the
    /// schema's own name, for comparing two schemas.
    const SCHEMA_OF: &str = "
        SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
               || ' ' || coalesce(column_default, '')
        FROM information_schema.columns WHERE table_schema = current_schema()
        UNION ALL
        SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
        UNION ALL
        SELECT replace(indexdef, current_schema() || '.', '')
        FROM pg_indexes WHERE schemaname = current_schema()
        ORDER BY 1";

    const VERSIONS: &str = "SELECT version FROM schema_migrations ORDER BY version";

    /// A backend on `schema` that has not migrated yet.
    fn unmigrated(schema: &ScratchSchema) -> PostgresStorage {
        PostgresStorage {
            pool: PostgresStorage::pool(&mut schema.config(), &PoolOptions::default()).unwrap(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_earlier_version_upgrades_to_the_fresh_schema() {
        let test = "every_earlier_version_upgrades_to_the_fresh_schema";
        let Some(fresh) = ScratchSchema::create(test).await else {
            return;
        };
        fresh.open(&PoolOptions::default()).await;
        let described = fresh.query(SCHEMA_OF).await;
        assert!(
            described
                .iter()
                .any(|l| l.contains("PRIMARY KEY (patient_id, cursor)")),
            "{described:#?}"
        );
        for applied in 0..MIGRATIONS.len() {
            let old = ScratchSchema::create(test).await.unwrap();
            let storage = unmigrated(&old);
            retrying(|| storage.migrate(&MIGRATIONS[..applied]))
                .await
                .unwrap();
            assert_eq!(old.query(VERSIONS).await.len(), applied);
            retrying(|| storage.migrate(MIGRATIONS)).await.unwrap();
            assert_eq!(
                old.query(SCHEMA_OF).await,
                fresh.query(SCHEMA_OF).await,
                "upgrade from {applied}"
            );
            assert_eq!(old.query(VERSIONS).await, fresh.query(VERSIONS).await);
        }
        // Opening an up-to-date database again changes nothing.
        fresh.open(&PoolOptions::default()).await;
        assert_eq!(fresh.query(VERSIONS).await.len(), MIGRATIONS.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_from_a_newer_server_is_refused_and_left_alone() {
        let test = "a_database_from_a_newer_server_is_refused_and_left_alone";
        let Some(schema) = ScratchSchema::create(test).await else {
            return;
        };
        schema.open(&PoolOptions::default()).await;
        let future = MIGRATIONS.len() as u32 + 1;
        schema
            .query(&format!(
                "INSERT INTO schema_migrations VALUES ({future}, 'future', now())"
            ))
            .await;
        let before = schema.query(SCHEMA_OF).await;
        let err = PostgresStorage::connect_with(schema.config(), &PoolOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::SchemaTooNew { found, supported }
                if found == future && supported == future - 1),
            "{err}"
        );
        assert_eq!(schema.query(SCHEMA_OF).await, before);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn servers_starting_together_migrate_once() {
        let test = "servers_starting_together_migrate_once";
        let Some(schema) = ScratchSchema::create(test).await else {
            return;
        };
        let config = schema.config();
        let starts: Vec<_> = (0..4)
            .map(|_| {
                let config = config.clone();
                tokio::spawn(async move {
                    PostgresStorage::connect_with(config, &PoolOptions::default()).await
                })
            })
            .collect();
        for start in starts {
            start.await.unwrap().unwrap();
        }
        let expected: Vec<String> = MIGRATIONS.iter().map(|m| m.version.to_string()).collect();
        assert_eq!(schema.query(VERSIONS).await, expected);
    }

    #[test]
    fn lost_connections_and_conflicts_are_retryable_and_the_rest_is_internal() {
        let closed = StorageError::from(Fault::Pool(PoolError::Closed));
        assert!(matches!(closed, StorageError::Unavailable(_)), "{closed}");
        let timeout = StorageError::from(Fault::Pool(PoolError::Timeout(
            deadpool_postgres::TimeoutType::Wait,
        )));
        assert!(matches!(timeout, StorageError::Unavailable(_)), "{timeout}");
        let decided = StorageError::from(Fault::Storage(StorageError::NotFound));
        assert!(matches!(decided, StorageError::NotFound));
    }
}
