//! The storage conformance suite on the PostgreSQL backend, each test in a fresh schema of the
//! database named by `HEELDIARY_TEST_DATABASE_URL`; without it every test says it was skipped.

use heeldiary_server::storage::{PoolOptions, PostgresStorage, ScratchSchema};

/// A backend on a fresh schema, or `None` when no test database is configured.
async fn fresh() -> Option<(PostgresStorage, ScratchSchema)> {
    let test = std::thread::current()
        .name()
        .unwrap_or("storage_postgres")
        .to_string();
    let schema = ScratchSchema::create(&test).await?;
    Some((schema.open(&PoolOptions::default()).await, schema))
}

heeldiary_server::storage_conformance!(optional: fresh());
