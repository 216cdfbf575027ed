//! Connection plumbing: the pool, the migrations run at open, and running one statement or one
//! transaction on a pooled connection.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{
    Client, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, NoTls, Row};

use super::faults::{describe, retrying, Fault};
use super::PostgresStorage;
use crate::storage::{migrations, pending, Migration, StorageError};

/// Every migration, in order. Add the next file here; the upgrade test covers it by itself.
pub(in crate::storage) const MIGRATIONS: &[Migration] = migrations!("server-postgres":
    1 => "0001_init",
    2 => "0002_code_used_by",
    3 => "0003_epoch_and_erasure",
    4 => "0004_providers",
    5 => "0005_research_export",
    6 => "0006_push_without_row_checks",
    7 => "0007_push_json_text",
    8 => "0008_compact_entry_state",
);

/// Schema version a fresh PostgreSQL database gets.
pub const POSTGRES_SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Advisory lock key held while migrating ("heeldiar" in ASCII): one server migrates, the others
/// wait and then find the schema up to date.
const MIGRATION_LOCK: i64 = 0x6865_656c_6469_6172;

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

impl PostgresStorage {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`, or the
    /// `key=value` form) and brings its schema up to date.
    ///
    /// # Failure
    /// [`StorageError::Internal`] for a URL that cannot be parsed (the message never repeats
    /// it) or a migration that fails; [`StorageError::Unavailable`] if the database cannot be
    /// reached; [`StorageError::NewerSchema`] for a database written by a newer server.
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
    pub(super) fn pool(
        config: &mut tokio_postgres::Config,
        options: &PoolOptions,
    ) -> Result<Pool, StorageError> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.timeout);
        }
        // Connections are not pinged at check-out (below): one whose peer vanished without
        // closing it (a failover, a firewall dropping idle flows) must fail by itself, soon,
        // instead of hanging each request that draws it until the request times out.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(options.timeout);
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // A pooled connection is checked at check-out only for whether its socket was
                // closed (a restart of the database or a terminated backend closes it), not
                // pinged: a ping is a round trip per statement, and every request runs a few.
                // A connection that died without a word fails the one request that finds it
                // (answered as unavailable, which devices retry) and is dropped.
                recycling_method: RecyclingMethod::Fast,
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
    pub(super) async fn migrate(&self, migrations: &[Migration]) -> Result<(), Fault> {
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

    /// Runs `work` on a pooled connection. A connection found lost on the way is dropped from
    /// the pool, and so is every idle one: the pool checks a connection at check-out only for a
    /// closed socket, and what cut one (a database restart, a network cut) most likely cut the
    /// others too, whose sockets may not say so yet.
    pub(super) async fn on_connection<T>(
        &self,
        work: impl AsyncFnOnce(&mut Client) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        let mut client = self.pool.get().await?;
        let outcome = work(&mut client).await;
        if outcome.as_ref().is_err_and(Fault::is_connection_lost) {
            drop(deadpool_postgres::Object::take(client));
            self.pool.retain(|_, _| false);
        }
        outcome
    }

    /// Runs `work` in a transaction of its own at `isolation` and commits it.
    pub(super) async fn in_transaction<T>(
        &self,
        isolation: IsolationLevel,
        work: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        self.on_connection(async |client| {
            let tx = client
                .build_transaction()
                .isolation_level(isolation)
                .start()
                .await?;
            let value = work(&tx).await?;
            tx.commit().await?;
            Ok(value)
        })
        .await
    }

    /// Runs one statement on a pooled connection (retried after a conflict) and returns the
    /// number of rows it changed.
    pub(super) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StorageError> {
        retrying(|| {
            self.on_connection(async |client| {
                let statement = client.prepare_cached(sql).await?;
                Ok(client.execute(&statement, params).await?)
            })
        })
        .await
    }

    /// Runs one query on a pooled connection (retried after a conflict) and returns its rows.
    pub(super) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StorageError> {
        retrying(|| {
            self.on_connection(async |client| {
                // Prepared once per connection, then cached.
                let statement = client.prepare_cached(sql).await?;
                Ok(client.query(&statement, params).await?)
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::ScratchSchema;
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

    /// A fresh schema, migrated, or `None` when no test database is configured.
    async fn migrated(test: &str) -> Option<ScratchSchema> {
        let schema = ScratchSchema::create(test).await?;
        schema.open(&PoolOptions::default()).await;
        Some(schema)
    }

    /// A backend on `schema` that has not migrated yet.
    fn unmigrated(schema: &ScratchSchema) -> PostgresStorage {
        PostgresStorage {
            pool: PostgresStorage::pool(&mut schema.config(), &PoolOptions::default()).unwrap(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_earlier_version_upgrades_to_the_fresh_schema() {
        let test = "every_earlier_version_upgrades_to_the_fresh_schema";
        let Some(fresh) = migrated(test).await else {
            return;
        };
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
    async fn patches_and_states_stored_as_jsonb_read_the_same_after_the_upgrade() {
        use crate::storage::conformance::{batch, enrolled};
        use crate::storage::Storage;
        use heeldiary_core::wire::PushStatus;
        use heeldiary_core::{EntryState, Field};

        let test = "patches_and_states_stored_as_jsonb_read_the_same_after_the_upgrade";
        let Some(old) = ScratchSchema::create(test).await else {
            return;
        };
        let as_json = MIGRATIONS
            .iter()
            .position(|m| m.name == "0007_push_json_text")
            .unwrap();
        let storage = unmigrated(&old);
        retrying(|| storage.migrate(&MIGRATIONS[..as_json]))
            .await
            .unwrap();
        // One operation and its entry as a push before the upgrade stored them.
        let (patient, device) = enrolled(&storage).await;
        let [first, edit]: [_; 2] = batch(device, 1, 2).try_into().unwrap();
        let mut state = EntryState::default();
        state.apply(&first);
        let received_at = "2026-11-01T09:00:00+00:00";
        old.query(&format!(
            "INSERT INTO ops (patient_id, cursor, device_id, device_seq, entry_id, hlc, patch,
                              received_at)
             VALUES ('{patient}', 1, '{device}', 1, '{entry}', '{hlc}', '{patch}'::jsonb,
                     '{received_at}');
             INSERT INTO entries (patient_id, entry_id, day, deleted, state, updated_at)
             VALUES ('{patient}', '{entry}', '2026-11-01', false, '{state}'::jsonb,
                     '{received_at}');
             UPDATE patients SET last_cursor = 1 WHERE patient_id = '{patient}'",
            entry = first.entry_id,
            hlc = first.hlc,
            patch = serde_json::to_string(&first.patch).unwrap(),
            state = serde_json::to_string(&state).unwrap(),
        ))
        .await;

        let upgraded = old.open(&PoolOptions::default()).await;
        let pulled = upgraded.pull(patient, 0, 10).await.unwrap();
        assert_eq!(pulled.ops.len(), 1);
        assert_eq!(pulled.ops[0].op, first);
        let stored = upgraded.entry(patient, first.entry_id, 0, 10).await;
        assert_eq!(stored.unwrap().unwrap().state, state);
        // A later edit of that entry merges into the state stored before the upgrade.
        let edit = heeldiary_core::Op {
            entry_id: first.entry_id,
            patch: [(Field::FirstStepPain, serde_json::json!(2))].into(),
            ..edit
        };
        let results = upgraded
            .push(
                patient,
                vec![first.clone(), edit.clone()],
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        let statuses: Vec<PushStatus> = results.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [PushStatus::Duplicate, PushStatus::Applied]);
        state.apply(&edit);
        let stored = upgraded.entry(patient, first.entry_id, 0, 10).await;
        let stored = stored.unwrap().unwrap();
        assert_eq!(stored.state, state);
        assert_eq!(stored.ops.len(), 2);
    }

    /// A database from before `0008_compact_entry_state` held each state field by field, the
    /// stamp repeated with every value; after the upgrade every reader gets the same states.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn states_stored_field_by_field_read_the_same_after_the_upgrade() {
        use crate::storage::conformance::{states_of_every_shape, states_read};
        use heeldiary_core::EntryState;

        let test = "states_stored_field_by_field_read_the_same_after_the_upgrade";
        let Some(schema) = migrated(test).await else {
            return;
        };
        let (patient, states) =
            states_of_every_shape(&schema.open(&PoolOptions::default()).await).await;
        let compact = MIGRATIONS
            .iter()
            .find(|m| m.name == "0008_compact_entry_state")
            .unwrap();
        // Back to the version before: the same rows, each state in the earlier form (the wire
        // form, which was stored as it was), the migration not yet recorded.
        for row in schema
            .query("SELECT entry_id || ' ' || state::text FROM entries")
            .await
        {
            let (entry_id, text) = row.split_once(' ').unwrap();
            let state = EntryState::from_stored(text).unwrap();
            let field_by_field = serde_json::to_string(&state).unwrap();
            assert!(field_by_field.contains(r#""fields":"#));
            schema
                .query(&format!(
                    "UPDATE entries SET state = '{}' WHERE entry_id = '{entry_id}'",
                    field_by_field.replace('\'', "''")
                ))
                .await;
        }
        schema
            .query(&format!(
                "DELETE FROM schema_migrations WHERE version >= {}",
                compact.version
            ))
            .await;
        let upgraded = schema.open(&PoolOptions::default()).await;
        assert_eq!(states_read(&upgraded, patient).await, states);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_from_a_newer_server_is_refused_and_left_alone() {
        let test = "a_database_from_a_newer_server_is_refused_and_left_alone";
        let Some(schema) = migrated(test).await else {
            return;
        };
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
            matches!(err, StorageError::NewerSchema { found, supported }
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
}
