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

/// An admin command beside a busy server: two handles on one file, as `heeldiary-server admin`
/// beside `serve`. Every code is issued while pushes keep the file busy: write transactions take
/// the write lock at their start and wait for it, rather than failing to upgrade a read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_writes_beside_a_busy_server_wait_for_the_lock_instead_of_failing() {
    use chrono::Utc;
    use heeldiary_server::admin;
    use heeldiary_server::storage::conformance::{batch, enrolled};
    use heeldiary_server::storage::{SqliteStorage, Storage};

    let dir = tempfile::tempdir().unwrap();
    let server = SqliteStorage::open_dir(dir.path()).await.unwrap();
    let (patient, device) = enrolled(&server).await;
    let admin_side = SqliteStorage::open_dir(dir.path()).await.unwrap();
    let pushing = tokio::spawn({
        let server = server.clone();
        async move {
            for round in 0..150u64 {
                server
                    .push(patient, batch(device, round * 20 + 1, 20), Utc::now())
                    .await
                    .unwrap();
            }
        }
    });
    let mut failed = Vec::new();
    for _ in 0..60 {
        // Each code reads the patient first, then writes: the pattern that failed at once.
        if let Err(e) = admin::new_code_for(&admin_side, patient, 24, Utc::now()).await {
            failed.push(e.to_string());
        }
        if let Err(e) = admin::add_patient(&admin_side, None, 24, Utc::now()).await {
            failed.push(e.to_string());
        }
        tokio::task::yield_now().await;
    }
    pushing.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed.first()
    );
}
