//! Connection plumbing: opening the file, the migrations run at open, running work on the one
//! connection off the async threads, and sorting SQLite failures into [`StorageError`]s.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, ErrorCode, TransactionBehavior};

use heeldiary_core::wire::PushResult;
use heeldiary_core::Op;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::transactions::{push_group, time_text, QueuedPush};
use super::SqliteStorage;
use crate::storage::{migrations, pending, Migration, PushAfter, StorageError};

/// Every migration, in order. Add the next file here; the upgrade test covers it by itself.
pub(in crate::storage) const MIGRATIONS: &[Migration] = migrations!("server-sqlite":
    1 => "0001_init",
    2 => "0002_code_used_by",
    3 => "0003_epoch_and_erasure",
    4 => "0004_providers",
    5 => "0005_research_export",
    6 => "0006_compact_entry_state",
);

/// How long a statement waits for a lock before the request fails as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Reading connections of a database file: a few more than the cores of a small server, so
/// that reads run side by side while some of them wait for the disk.
const READERS: usize = 4;

/// Page size of a new server database. A commit writes whole pages to the log, each with a
/// header and a checksum, and a push's rows of a few hundred bytes fill and split pages
/// quickly: with 16 KiB pages, the rows and indexes of a 100,000-entry push are written in about
/// 70 % of the time 4 KiB pages take.
const PAGE_SIZE: i64 = 16_384;

/// The log size at which a commit checkpoints by itself.
const LOG_BOUND_BYTES: i64 = 40 << 20;

impl SqliteStorage {
    /// Name of the database file inside the data directory.
    pub const FILE_NAME: &'static str = "heeldiary-server.sqlite3";

    /// Opens (creating if needed) the database in directory `dir`, creating the directory too,
    /// and brings its schema up to date.
    ///
    /// # Failure
    /// [`StorageError::NewerSchema`] for a database written by a newer server;
    /// [`StorageError::Internal`] if the directory or file cannot be used.
    pub async fn open_dir(dir: &Path) -> Result<Self, StorageError> {
        let dir = dir.to_owned();
        let file = dir.join(Self::FILE_NAME);
        let storage = Self::open_with(move || {
            std::fs::create_dir_all(&dir).map_err(|e| {
                StorageError::Internal(format!("cannot create {}: {e}", dir.display()))
            })?;
            let conn = Connection::open(dir.join(Self::FILE_NAME))?;
            // Before WAL: switching the journal mode takes a lock that another process (an
            // admin command beside a running server) may hold for a moment.
            conn.busy_timeout(BUSY_TIMEOUT)?;
            // Only a new, empty file takes it (one made by an earlier version keeps its pages).
            conn.pragma_update(None, "page_size", PAGE_SIZE)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // The checkpointer thread copies the log into the file in the background (see
            // `Checkpoints`). Should it fall behind, or be held back by a long read, a commit
            // that leaves about 40 MiB in the log checkpoints by itself: a fixed bound on the
            // log, whatever the number of entries. A cache of 16 MiB keeps more of the indexes'
            // growing edges in memory.
            let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            conn.pragma_update(
                None,
                "wal_autocheckpoint",
                LOG_BOUND_BYTES / page_size.max(512),
            )?;
            conn.pragma_update(None, "cache_size", -16_384)?;
            Ok(conn)
        })
        .await?;
        // Opened once the writer has migrated the schema.
        let reader_file = file.clone();
        let readers = blocking(move || {
            (0..READERS)
                .map(|_| {
                    let reader = Connection::open(&reader_file)?;
                    reader.busy_timeout(BUSY_TIMEOUT)?;
                    reader.pragma_update(None, "query_only", true)?;
                    Ok(Arc::new(Mutex::new(reader)))
                })
                .collect::<Result<Vec<_>, StorageError>>()
        })
        .await?;
        let checkpoints = Checkpoints::start(&file)?;
        Ok(Self {
            readers: Arc::new(Readers::new(readers)),
            export_readers: Some(Arc::new(ExportReaders {
                file,
                idle: Mutex::default(),
            })),
            checkpoints: Some(checkpoints),
            ..storage
        })
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
            // A push prepares its multi-row statements once per chunk size it meets (three
            // kinds, up to 64 sizes each); rusqlite's default cache of 16 would keep evicting
            // them and every other statement between pushes.
            conn.set_prepared_statement_cache_capacity(256);
            Ok(conn)
        })
        .await?;
        let conn = Arc::new(Mutex::new(conn));
        Ok(Self {
            readers: Arc::new(Readers::new(vec![Arc::clone(&conn)])),
            conn,
            queued_pushes: Arc::default(),
            export_readers: None,
            checkpoints: None,
        })
    }

    /// Runs `f` on the writing connection on the blocking pool.
    pub(super) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let result = on(&self.conn, f).await;
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.committed();
        }
        result
    }

    /// Runs `f` on a reading connection on the blocking pool: it sees what was committed
    /// before it started, and never waits for a commit in progress.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let readers = Arc::clone(&self.readers);
        blocking(move || readers.with_one(f)).await
    }

    /// Runs `f` on a connection of the exports' own when the database is a file (so a page of
    /// an export never waits for, nor holds up, a push or a request), else on the reading one.
    pub(super) async fn export_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let Some(readers) = self.export_readers.clone() else {
            return self.read(f).await;
        };
        blocking(move || {
            let mut conn = readers.take()?;
            let result = f(&mut conn);
            readers.give_back(conn);
            result
        })
        .await
    }

    /// Stores a push together with the others queued meanwhile (see
    /// [`push_group`](super::transactions::push_group)) and returns its results once committed.
    /// The push is queued when the future is first polled, before it waits for anything, and
    /// the queue is stored in order: what
    /// [`queues_pushes_when_polled`](crate::storage::Storage::queues_pushes_when_polled) promises.
    pub(super) async fn push_queued(
        &self,
        patient_id: Uuid,
        after: Option<PushAfter>,
        ops: Vec<Op>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<PushResult>, StorageError> {
        let (answer, answered) = oneshot::channel();
        let start_writer = {
            let mut queue = lock(&self.queued_pushes);
            queue.waiting.push(QueuedPush {
                patient_id,
                after,
                ops,
                received_at,
                answer,
            });
            !std::mem::replace(&mut queue.writing, true)
        };
        // One task on the blocking pool writes every queued push, group after group, until the
        // queue is empty. A task per push, each waiting for the connection to find the queue
        // empty but for its own, held a thread per push in flight and woke each of them after
        // every commit: with a hundred devices syncing, the server spent more time switching
        // between those threads than storing pushes.
        if start_writer {
            let storage = self.clone();
            tokio::task::spawn_blocking(move || storage.write_queued_pushes());
        }
        answered
            .await
            .map_err(|_| StorageError::Internal("the push was dropped before its commit".into()))?
    }

    /// Commits the queued pushes, those queued meanwhile as the next group, until none is left.
    fn write_queued_pushes(&self) {
        // Should a commit panic, the pushes still queued are answered (their senders dropped)
        // and the next push starts a writer again.
        struct Panicked<'a>(&'a Mutex<PushQueue>);
        impl Drop for Panicked<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    let mut queue = lock(self.0);
                    queue.writing = false;
                    queue.waiting.clear();
                }
            }
        }
        let _panicked = Panicked(&self.queued_pushes);
        loop {
            let mut conn = lock(&self.conn);
            // Taken once the connection is held: the pushes queued while it was busy join this
            // group. Finding none and stopping happen under one lock of the queue, so a push
            // queued meanwhile either is in the group or finds no writer and starts one.
            let group = {
                let mut queue = lock(&self.queued_pushes);
                if queue.waiting.is_empty() {
                    queue.writing = false;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            push_group(&mut conn, group);
            drop(conn);
            if let Some(checkpoints) = &self.checkpoints {
                checkpoints.committed();
            }
        }
    }

    /// Runs `f` on a reading connection: at once on this thread if one is idle, else on the
    /// blocking pool. For a lookup by key, whose pages are as good as always in memory: it takes
    /// less time than handing it to another thread and back.
    pub(super) async fn read_by_key<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        match self.readers.try_idle(|conn| without_waiting(conn, &f)) {
            Ok(Some(result)) => result,
            Ok(None) | Err(_) => self.read(f).await,
        }
    }
}

/// Runs `f` on `conn` unless it would wait for a lock: `None` then, and the caller reads on the
/// blocking pool instead. A read at once runs on an async thread, which must never sleep in
/// SQLite's busy handler: the requests it serves would all wait with it.
pub(super) fn without_waiting<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T, StorageError>,
) -> Option<Result<T, StorageError>> {
    conn.busy_timeout(Duration::ZERO).ok()?;
    let result = f(conn);
    if let Err(e) = conn.busy_timeout(BUSY_TIMEOUT) {
        return Some(Err(e.into()));
    }
    match result {
        Err(StorageError::Unavailable(_)) => None,
        other => Some(other),
    }
}

/// Pushes waiting for the writer, and whether a writer is at work on them.
#[derive(Default)]
pub(super) struct PushQueue {
    pub(super) waiting: Vec<QueuedPush>,
    /// Set by the push that starts the writer, cleared by the writer when it finds the queue
    /// empty, both under the queue's lock: no push is left waiting without a writer.
    pub(super) writing: bool,
}

/// The checkpointer: a thread with a connection of its own that copies committed pages from the
/// log into the database file (a passive checkpoint, which never blocks the writer nor the
/// readers), woken after writes and running at most once per [`CHECKPOINT_INTERVAL`].
///
/// Why: SQLite checkpoints inside the commit that crosses its threshold, so the pushes of that
/// commit wait for pages to be copied and the file synced before they are answered, and every
/// push queued behind them waits too. Here the copying runs on another core while the writer
/// goes on; the writer's own threshold stays as the bound for a checkpointer that falls behind.
#[derive(Clone)]
pub(super) struct Checkpoints {
    wake: SyncSender<()>,
}

/// How often the checkpointer copies the log at most: often enough that the log stays short
/// under any load, rarely enough that index pages changed by every commit are not copied over
/// and over.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

impl Checkpoints {
    /// Starts the checkpointer of the database `file`. It stops once every handle is dropped.
    fn start(file: &Path) -> Result<Self, StorageError> {
        let conn = Connection::open(file)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // The file is synced after each checkpoint, as the writer's own checkpoints sync it.
        conn.pragma_update(None, "synchronous", "FULL")?;
        let (wake, woken) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&conn, &woken))
            .map_err(|e| StorageError::Internal(format!("cannot start the checkpointer: {e}")))?;
        Ok(Self { wake })
    }

    /// Tells the checkpointer that a write was committed.
    pub(super) fn committed(&self) {
        // A full channel means a wake is pending already: the checkpoint it triggers covers
        // this commit too.
        let _ = self.wake.try_send(());
    }
}

fn checkpoint_loop(conn: &Connection, woken: &Receiver<()>) {
    let mut last = Instant::now();
    while woken.recv().is_ok() {
        let since = last.elapsed();
        if since < CHECKPOINT_INTERVAL {
            std::thread::sleep(CHECKPOINT_INTERVAL - since);
        }
        // The commits made during the wait are covered by this checkpoint.
        while woken.try_recv().is_ok() {}
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "background checkpoint failed; the writer checkpoints instead");
        }
        last = Instant::now();
    }
}

/// Read-only connections beside the writer. Every request reads (its token, the epoch, the
/// feed); with one reading connection those reads would wait for each other.
pub(super) struct Readers {
    connections: Vec<Arc<Mutex<Connection>>>,
    /// Which connection the next read waits for when every one is busy.
    next: AtomicUsize,
}

impl Readers {
    fn new(connections: Vec<Arc<Mutex<Connection>>>) -> Self {
        assert!(!connections.is_empty(), "at least one reading connection");
        Self {
            connections,
            next: AtomicUsize::new(0),
        }
    }

    /// Runs `f` on an idle connection if there is one; gives `f` back when every one is busy.
    pub(super) fn try_idle<T, F: FnOnce(&mut Connection) -> T>(&self, f: F) -> Result<T, F> {
        for conn in &self.connections {
            match conn.try_lock() {
                Ok(mut idle) => return Ok(f(&mut idle)),
                // A panic while holding it left no transaction open: see `lock`.
                Err(TryLockError::Poisoned(poisoned)) => return Ok(f(&mut poisoned.into_inner())),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        Err(f)
    }

    /// Runs `f` on an idle connection, or, when every one is busy, on the next in turn once it
    /// is free.
    fn with_one<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        let f = match self.try_idle(f) {
            Ok(result) => return result,
            Err(f) => f,
        };
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        f(&mut lock(&self.connections[turn]))
    }
}

/// Read-only connections of their own for the exports, kept between patients: an export holds
/// one for as long as it reads a patient's snapshot (a long read for a large diary), so requests
/// never wait behind it on the reading connections.
pub(super) struct ExportReaders {
    file: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Idle export connections kept for the next patient; more exports at once open their own.
const IDLE_EXPORT_READERS: usize = 2;

impl ExportReaders {
    /// An idle connection, or a new one.
    pub(super) fn take(&self) -> Result<Connection, StorageError> {
        if let Some(conn) = lock(&self.idle).pop() {
            return Ok(conn);
        }
        let conn = Connection::open(&self.file)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "query_only", true)?;
        // A page of entries and then the operations of its edited entries walk two indexes
        // over the same stretch of the file; a cache as large as the writer's keeps both.
        conn.pragma_update(None, "cache_size", -16_384)?;
        Ok(conn)
    }

    /// Keeps `conn` for the next export read, unless enough are kept already.
    pub(super) fn give_back(&self, conn: Connection) {
        let mut idle = lock(&self.idle);
        if idle.len() < IDLE_EXPORT_READERS {
            idle.push(conn);
        }
    }
}

/// Locks `mutex`; a panic while holding it rolled its transaction back, so what it guards is
/// fine.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `f` on `conn` on the blocking pool.
async fn on<T: Send + 'static>(
    conn: &Arc<Mutex<Connection>>,
    f: impl FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    let conn = Arc::clone(conn);
    blocking(move || f(&mut lock(&conn))).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

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

    /// A database from before `0006_compact_entry_state` held each state field by field, the
    /// stamp repeated with every value; after the upgrade every reader gets the same states.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn states_stored_field_by_field_read_the_same_after_the_upgrade() {
        use crate::storage::conformance::{states_of_every_shape, states_read};
        use heeldiary_core::EntryState;

        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open_dir(dir.path()).await.unwrap();
        let (patient, states) = states_of_every_shape(&storage).await;
        drop(storage);
        let compact = MIGRATIONS
            .iter()
            .find(|m| m.name == "0006_compact_entry_state")
            .unwrap();
        {
            // Back to the version before: the same rows, each state in the earlier form (the
            // wire form, which was stored as it was), the migration not yet recorded.
            let conn = Connection::open(dir.path().join(SqliteStorage::FILE_NAME)).unwrap();
            let stored: Vec<(String, String)> = conn
                .prepare("SELECT entry_id, state FROM entries")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for (entry_id, text) in stored {
                let state = EntryState::from_stored(&text).unwrap();
                let field_by_field = serde_json::to_string(&state).unwrap();
                assert!(field_by_field.contains(r#""fields":"#));
                conn.execute(
                    "UPDATE entries SET state = ?2 WHERE entry_id = ?1",
                    [&entry_id, &field_by_field],
                )
                .unwrap();
            }
            conn.execute(
                "DELETE FROM schema_migrations WHERE version >= ?1",
                [compact.version],
            )
            .unwrap();
        }
        let upgraded = SqliteStorage::open_dir(dir.path()).await.unwrap();
        assert_eq!(states_read(&upgraded, patient).await, states);
    }

    /// Commits reach the database file through the checkpointer: in WAL mode only a checkpoint
    /// writes the file, and these commits leave far fewer pages in the log than the writer's
    /// own threshold.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpointer_copies_commits_into_the_file() {
        use crate::storage::conformance::{batch, enrolled};

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(SqliteStorage::FILE_NAME);
        let storage = SqliteStorage::open_dir(dir.path()).await.unwrap();
        let (patient, device) = enrolled(&storage).await;
        let size = || std::fs::metadata(&file).unwrap().len();
        let before = size();
        storage
            .push(patient, batch(device, 1, 2_000), Utc::now())
            .await
            .unwrap();
        let log = dir.path().join(format!("{}-wal", SqliteStorage::FILE_NAME));
        let log_pages = std::fs::metadata(&log).unwrap().len() / 4096;
        assert!(
            log_pages < 10_000,
            "{log_pages} pages reach the writer's threshold"
        );
        // Waits for the checkpointer, however slow the machine.
        let mut waited = 0;
        while size() <= before {
            assert!(waited < 600, "no checkpoint after {waited} tries");
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += 1;
        }
        assert_eq!(
            storage.pull(patient, 0, 5_000).await.unwrap().ops.len(),
            2_000
        );
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
            matches!(err, StorageError::NewerSchema { found, supported }
                if found == future && supported == future - 1),
            "{err}"
        );
        assert!(err.to_string().contains("newer"), "{err}");
        assert_eq!(schema_of(&conn), before);
    }

    /// Whether an entry is new, edited in the batch that creates it, repeated within a batch or
    /// edited later, its stored state is its operations in the feed folded in cursor order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stored_states_are_the_feed_folded() {
        use crate::storage::conformance::{create, enrolled, op};
        use heeldiary_core::{EntryState, Field};
        use serde_json::json;

        let storage = SqliteStorage::open_in_memory().await.unwrap();
        let (patient, device) = enrolled(&storage).await;
        let [once, edited, repeated, stored, later] = [(); 5].map(|()| Uuid::now_v7());
        let repeat = create(device, 4, repeated, 1_004);
        let first = vec![
            create(device, 1, once, 1_001),
            create(device, 2, edited, 1_002),
            op(
                device,
                3,
                edited,
                1_003,
                &[(Field::FirstStepPain, json!(2))],
            ),
            // The same operation twice in one batch: stored once.
            repeat.clone(),
            repeat,
            create(device, 5, stored, 1_005),
        ];
        storage.push(patient, first, Utc::now()).await.unwrap();
        let second = vec![
            // An entry the patient has: merged with its stored state.
            op(device, 6, stored, 1_006, &[(Field::SittingPain, json!(4))]),
            op(
                device,
                7,
                stored,
                1_007,
                &[(Field::FirstStepPain, json!(null))],
            ),
            create(device, 8, later, 1_008),
        ];
        storage.push(patient, second, Utc::now()).await.unwrap();

        let feed = storage.pull(patient, 0, 100).await.unwrap().ops;
        let conn = lock(&storage.conn);
        for entry in [once, edited, repeated, stored, later] {
            let mut folded = EntryState::default();
            for pulled in feed.iter().filter(|p| p.op.entry_id == entry) {
                folded.apply(&pulled.op);
            }
            let kept: String = conn
                .query_row(
                    "SELECT state FROM entries WHERE patient_id = ?1 AND entry_id = ?2",
                    [patient.to_string(), entry.to_string()],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(kept, folded.to_stored(), "entry {entry}");
        }
        let sitting: String = conn
            .query_row(
                "SELECT state FROM entries WHERE entry_id = ?1",
                [stored.to_string()],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            sitting.contains("\"day\"") && sitting.contains("sitting_pain"),
            "the edit is merged into what was stored: {sitting}"
        );
    }

    /// A push that must follow another, polled after it, is queued behind it and finds it
    /// stored; when that one is refused, it is refused too and writes nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_push_polled_once_is_stored_before_one_polled_after_it() {
        use crate::storage::conformance::{batch, enrolled};
        use crate::storage::PushAfter;
        use futures_util::FutureExt;
        use heeldiary_core::wire::PushStatus;

        let storage = SqliteStorage::open_in_memory().await.unwrap();
        assert!(storage.queues_pushes_when_polled());
        let (patient, device) = enrolled(&storage).await;
        let after = |op: &Op| PushAfter {
            device_id: device,
            device_seq: op.device_seq,
            hlc: op.hlc,
        };
        // Twice: the batch the second follows is stored, and then it is refused.
        for (round, first_seq) in [(0, 1), (1, 5)] {
            let first = batch(device, first_seq, 3);
            let second = batch(device, first_seq + 3, 2);
            let follows = after(&first[2]);
            let first = if round == 1 {
                // Sequence 5 holds another operation already: the first batch is refused.
                let mut reused = first;
                reused[0].entry_id = uuid::Uuid::now_v7();
                reused
            } else {
                first
            };
            // The writer is held, so both wait in its queue; the second, polled last, behind.
            let held = lock(&storage.conn);
            let mut pushing_first = Box::pin(storage.push_after(patient, None, first, Utc::now()));
            let mut pushing_second =
                Box::pin(storage.push_after(patient, Some(follows), second, Utc::now()));
            assert!(pushing_first.as_mut().now_or_never().is_none());
            assert!(pushing_second.as_mut().now_or_never().is_none());
            assert_eq!(lock(&storage.queued_pushes).waiting.len(), 2);
            drop(held);
            let (first, second) = (pushing_first.await, pushing_second.await);
            if round == 0 {
                assert_eq!(first.unwrap(), statuses_of(1..=3));
                assert_eq!(second.unwrap(), statuses_of(4..=5));
            } else {
                assert!(
                    matches!(first, Err(StorageError::SequenceReused { .. })),
                    "{first:?}"
                );
                assert!(
                    matches!(second, Err(StorageError::OutOfOrder { device_seq: 7 })),
                    "{second:?}"
                );
            }
        }
        let seqs: Vec<u64> = storage
            .pull(patient, 0, 100)
            .await
            .unwrap()
            .ops
            .iter()
            .map(|o| o.op.device_seq)
            .collect();
        assert_eq!(
            seqs,
            vec![1, 2, 3, 4, 5],
            "nothing of the refused round is kept"
        );

        fn statuses_of(seqs: std::ops::RangeInclusive<u64>) -> Vec<PushResult> {
            seqs.map(|device_seq| PushResult {
                device_seq,
                status: PushStatus::Applied,
            })
            .collect()
        }
    }

    /// Pushes of three patients queue while a commit holds the connection, then share one
    /// transaction: the one that reuses a sequence number fails alone and writes nothing, the
    /// others are stored with their own cursors.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_pushes_share_a_commit_and_fail_alone() {
        use crate::storage::conformance::{batch, enrolled};
        use heeldiary_core::wire::PushStatus;

        let storage = SqliteStorage::open_in_memory().await.unwrap();
        let mut patients = Vec::new();
        for _ in 0..3 {
            let (patient, device) = enrolled(&storage).await;
            storage
                .push(patient, batch(device, 1, 2), Utc::now())
                .await
                .unwrap();
            patients.push((patient, device));
        }
        let before: Vec<_> = {
            let mut pulls = Vec::new();
            for (patient, _) in &patients {
                pulls.push(storage.pull(*patient, 0, 100).await.unwrap().ops);
            }
            pulls
        };
        let held = lock(&storage.conn);
        let pushes: Vec<_> = patients
            .iter()
            .enumerate()
            .map(|(i, &(patient, device))| {
                // The second patient's batch reuses sequence 2 for another operation.
                let first_seq = if i == 1 { 2 } else { 3 };
                let storage = storage.clone();
                tokio::spawn(async move {
                    storage
                        .push(patient, batch(device, first_seq, 3), Utc::now())
                        .await
                })
            })
            .collect();
        while lock(&storage.queued_pushes).waiting.len() < 3 {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(held);
        let mut results = Vec::new();
        for push in pushes {
            results.push(push.await.unwrap());
        }
        assert!(lock(&storage.queued_pushes).waiting.is_empty());
        assert!(
            matches!(
                results[1],
                Err(StorageError::SequenceReused {
                    index: 0,
                    device_seq: 2
                })
            ),
            "{:?}",
            results[1]
        );
        for i in [0, 2] {
            let statuses: Vec<_> = results[i]
                .as_ref()
                .unwrap()
                .iter()
                .map(|r| r.status)
                .collect();
            assert_eq!(statuses, vec![PushStatus::Applied; 3]);
            let ops = storage.pull(patients[i].0, 0, 100).await.unwrap().ops;
            assert_eq!(
                ops.iter()
                    .map(|p| (p.cursor, p.op.device_seq))
                    .collect::<Vec<_>>(),
                vec![(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
            );
        }
        let refused = storage.pull(patients[1].0, 0, 100).await.unwrap().ops;
        assert_eq!(refused, before[1], "the refused push wrote nothing");
    }

    /// Pushes that keep arriving as the writer finds the queue empty and stops are all stored
    /// and answered: none is left without a writer, none is answered with an error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pushes_arriving_as_the_writer_stops_are_all_stored() {
        use crate::storage::conformance::{batch, enrolled};

        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open_dir(dir.path()).await.unwrap();
        let mut devices = Vec::new();
        for _ in 0..8 {
            devices.push(enrolled(&storage).await);
        }
        let tasks: Vec<_> = devices
            .into_iter()
            .map(|(patient, device)| {
                let storage = storage.clone();
                tokio::spawn(async move {
                    for seq in 1..=25 {
                        storage
                            .push(patient, batch(device, seq, 1), Utc::now())
                            .await
                            .unwrap();
                        tokio::task::yield_now().await;
                    }
                    storage.pull(patient, 0, 100).await.unwrap().ops.len()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 25);
        }
        // The writer answers the last group before it looks at the queue again and stops:
        // waits for that, however slow the machine.
        let mut waited = 0;
        while lock(&storage.queued_pushes).writing {
            assert!(waited < 600, "the writer still runs after {waited} tries");
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        assert!(lock(&storage.queued_pushes).waiting.is_empty());
    }

    /// The reading connection sees at once what another handle on the file committed: a device
    /// revoked and a restore declared by an admin command beside a running server.
    #[tokio::test]
    async fn a_revocation_or_restore_committed_elsewhere_is_seen_at_once() {
        use crate::storage::conformance::enrolled;

        let dir = tempfile::tempdir().unwrap();
        let server = SqliteStorage::open_dir(dir.path()).await.unwrap();
        let admin = SqliteStorage::open_dir(dir.path()).await.unwrap();
        let (patient, device) = enrolled(&server).await;
        let epoch = server.epoch().await.unwrap();
        let credentials = server.authenticate(patient, device).await.unwrap().unwrap();
        assert!(!credentials.revoked);

        admin
            .revoke_device(patient, device, Utc::now())
            .await
            .unwrap();
        let credentials = server.authenticate(patient, device).await.unwrap().unwrap();
        assert!(credentials.revoked);

        let restored = admin.mark_restored(Utc::now()).await.unwrap();
        assert_ne!(restored, epoch);
        assert_eq!(server.epoch().await.unwrap(), restored);
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

    /// The writer's page size and the log size (in pages) at which it checkpoints by itself.
    async fn pages_of(storage: &SqliteStorage) -> (i64, i64) {
        storage
            .call(|conn| {
                let size = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
                let bound = conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))?;
                Ok((size, bound))
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_new_database_has_large_pages_and_an_older_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let new = SqliteStorage::open_dir(&dir.path().join("new"))
            .await
            .unwrap();
        assert_eq!(
            pages_of(&new).await,
            (PAGE_SIZE, LOG_BOUND_BYTES / PAGE_SIZE)
        );

        // A file an earlier version made, with the default pages and part of the schema.
        let older = dir.path().join("older");
        std::fs::create_dir_all(&older).unwrap();
        {
            let mut conn = Connection::open(older.join(SqliteStorage::FILE_NAME)).unwrap();
            conn.pragma_update(None, "page_size", 4096).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            migrate(&mut conn, &MIGRATIONS[..1]).unwrap();
        }
        let storage = SqliteStorage::open_dir(&older).await.unwrap();
        // The log bound stays about the same number of bytes whatever the page size.
        assert_eq!(pages_of(&storage).await, (4096, LOG_BOUND_BYTES / 4096));
        let (patient, device) = crate::storage::conformance::enrolled(&storage).await;
        let ops = crate::storage::conformance::batch(device, 1, 3);
        let results = storage.push(patient, ops, Utc::now()).await.unwrap();
        assert_eq!(results.len(), 3);
        let page = storage.pull(patient, 0, 10).await.unwrap();
        assert_eq!(page.ops.len(), 3);
    }
}
