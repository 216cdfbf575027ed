//! Test support: scratch schemas on a shared PostgreSQL database. Built only for tests and with
//! the `test-support` feature, never into the server a clinic runs.

use std::str::FromStr;

use tokio_postgres::NoTls;
use uuid::Uuid;

use super::faults::describe;
use super::{PoolOptions, PostgresStorage};

/// Environment variable naming a PostgreSQL database for tests, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`. Tests make their own schemas in it.
pub const TEST_DATABASE_URL: &str = "HEELDIARY_TEST_DATABASE_URL";

/// Test support: a fresh schema on the database of [`TEST_DATABASE_URL`], so that tests share
/// one database without seeing each other's tables. Dropped (with everything in it) when this
/// value is dropped.
pub struct ScratchSchema {
    /// The test database as [`TEST_DATABASE_URL`] gives it.
    url: String,
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
        Some(Self { url, config, name })
    }

    /// [`create`](Self::create) for a test that runs no async runtime of its own (one that
    /// drives processes, such as the end-to-end tests).
    ///
    /// # Panics
    /// As [`create`](Self::create).
    pub fn create_blocking(test: &str) -> Option<Self> {
        let test = test.to_string();
        // On a thread with a runtime of its own, so that a caller inside a runtime is fine too.
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the test schema")
                .block_on(Self::create(&test))
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
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

    /// [`config`](Self::config) as a URL, for a process that takes one (the server binary's
    /// `--database-url`): the test database's URL with the search path and application name as
    /// parameters. [`TEST_DATABASE_URL`] must be in the URL form (`postgres://…`).
    pub fn url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-csearch_path%3D{name}&application_name={name}",
            self.url,
            name = self.name
        )
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
