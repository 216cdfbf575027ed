//! The storage conformance suite on the SQLite backend, in memory and on disk.

mod in_memory {
    heeldiary_server::storage_conformance!(async {
        let storage = heeldiary_server::storage::SqliteStorage::open_in_memory()
            .await
            .expect("open in-memory database");
        (storage, ())
    });
}

mod on_disk {
    use heeldiary_server::storage::SqliteStorage;
    use tempfile::TempDir;

    /// A database in a fresh directory, removed with the guard.
    async fn fresh() -> (SqliteStorage, TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = SqliteStorage::open_dir(dir.path())
            .await
            .expect("open database");
        (storage, dir)
    }

    heeldiary_server::storage_conformance!(fresh());
}
