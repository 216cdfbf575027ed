//! The storage conformance suite on the PostgreSQL backend, each test in a fresh schema of the
//! database named by `HEELDIARY_TEST_DATABASE_URL`; without it every test says it was skipped.
//! Then what only a database server can do to a backend: cut its connections mid-push.

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

/// What only a database server can do to a backend: lose its connections in the middle of work.
mod connection_loss {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::Utc;
    use heeldiary_core::wire::{PushResult, PushStatus};
    use heeldiary_core::Op;
    use heeldiary_server::storage::conformance::{batch, enrolled};
    use heeldiary_server::storage::{
        PoolOptions, PostgresStorage, ScratchSchema, Storage, StorageError,
    };
    use tokio_postgres::NoTls;
    use uuid::Uuid;

    /// Terminates every connection of the backend under test (they carry the schema's name),
    /// as a database restart or a network cut would; returns how many there were.
    /// A connection of its own that holds the patient's counter row in an open transaction,
    /// so a push stops inside its transaction, waiting for the lock; `ROLLBACK` lets go.
    async fn hold_counter_row(schema: &ScratchSchema, patient: Uuid) -> tokio_postgres::Client {
        let (blocker, connection) = schema
            .config()
            .application_name("blocker")
            .connect(NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        blocker
            .batch_execute(&format!(
                "BEGIN; SELECT 1 FROM patients WHERE patient_id = '{patient}' FOR UPDATE"
            ))
            .await
            .unwrap();
        blocker
    }

    /// Sessions of the storage under test left inside a transaction.
    const IDLE_IN_TRANSACTION: &str = "state LIKE 'idle in transaction%'";

    /// How many sessions of the storage under test meet `condition`.
    fn sessions_where(schema: &ScratchSchema, condition: &str) -> String {
        format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{}' AND {condition}",
            schema.name()
        )
    }

    /// `query`'s answer once it is `want`, or after two seconds whatever it is.
    /// A push of `ops` started while the patient's counter row is held from outside, once it
    /// waits for that lock inside its transaction; with the connection holding the row.
    async fn push_blocked(
        schema: &ScratchSchema,
        s: &PostgresStorage,
        patient: Uuid,
        ops: Vec<Op>,
    ) -> (
        tokio_postgres::Client,
        tokio::task::JoinHandle<Result<Vec<PushResult>, StorageError>>,
    ) {
        let blocker = hold_counter_row(schema, patient).await;
        let pushing = tokio::spawn({
            let s = s.clone();
            async move { s.push(patient, ops, Utc::now()).await }
        });
        assert_eq!(
            eventually(
                schema,
                &sessions_where(schema, "wait_event_type = 'Lock'"),
                "1"
            )
            .await,
            ["1"],
            "the push never blocked"
        );
        (blocker, pushing)
    }

    async fn eventually(schema: &ScratchSchema, query: &str, want: &str) -> Vec<String> {
        for _ in 0..200 {
            if schema.query(query).await == [want] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        schema.query(query).await
    }

    async fn cut_connections(schema: &ScratchSchema) -> usize {
        let killed = schema
            .query(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = '{}' AND pid <> pg_backend_pid()",
                schema.name()
            ))
            .await;
        killed.len()
    }

    /// Pushes `ops` until the backend takes them, retrying as a device does after a 503;
    /// returns how many attempts were unavailable. `attempts` counts every try, so a test that
    /// cuts connections can pace its cuts by the pusher's progress instead of by the clock.
    async fn push_until_stored(
        s: &PostgresStorage,
        patient: Uuid,
        ops: &[Op],
        attempts: &AtomicU64,
    ) -> u32 {
        let mut unavailable = 0;
        loop {
            attempts.fetch_add(1, Ordering::SeqCst);
            match s.push(patient, ops.to_vec(), Utc::now()).await {
                Ok(results) => {
                    assert_eq!(results.len(), ops.len());
                    return unavailable;
                }
                Err(StorageError::Unavailable(_)) if unavailable < 20 => {
                    unavailable += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(other) => panic!("push failed for good: {other:?}"),
            }
        }
    }

    /// Every op of the patient is stored once, with cursors 1..=n and no gap.
    async fn assert_stored_once(s: &PostgresStorage, patient: Uuid, device: Uuid, n: u64) {
        let page = s.pull(patient, 0, 100_000).await.unwrap();
        assert!(!page.has_more);
        let cursors: Vec<u64> = page.ops.iter().map(|p| p.cursor).collect();
        assert_eq!(cursors, (1..=n).collect::<Vec<_>>());
        let mut seqs: Vec<u64> = page
            .ops
            .iter()
            .filter(|p| p.op.device_id == device)
            .map(|p| p.op.device_seq)
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_push_cut_off_mid_transaction_is_unavailable_writes_nothing_and_retries_once() {
        let test = "a_push_cut_off_mid_transaction_is_unavailable_writes_nothing_and_retries_once";
        let Some(schema) = ScratchSchema::create(test).await else {
            return;
        };
        let s = schema.open(&PoolOptions::default()).await;
        let (patient, device) = enrolled(&s).await;
        push_until_stored(&s, patient, &batch(device, 1, 10), &AtomicU64::new(0)).await;

        // Hold the patient's counter row from outside, so the next push stops inside its
        // transaction, waiting for the lock; then cut the backend's connections.
        let second = batch(device, 11, 10);
        let (blocker, pushing) = push_blocked(&schema, &s, patient, second.clone()).await;
        assert!(cut_connections(&schema).await >= 1);
        let cut = pushing.await.unwrap();
        assert!(
            matches!(cut, Err(StorageError::Unavailable(_))),
            "a lost connection must be retryable: {cut:?}"
        );
        blocker.batch_execute("ROLLBACK").await.unwrap();
        let page = s.pull(patient, 0, 1_000).await.unwrap();
        assert_eq!(page.ops.len(), 10, "a cut push left a trace");

        // The pool reconnects by itself; the retry stores the batch exactly once.
        let results = s.push(patient, second.clone(), Utc::now()).await.unwrap();
        assert_eq!(results.len(), 10);
        assert_stored_once(&s, patient, device, 20).await;
        let again = s.push(patient, second, Utc::now()).await;
        assert!(again
            .unwrap()
            .iter()
            .all(|r| r.status == PushStatus::Duplicate));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pushes_survive_repeated_connection_loss_with_exact_counts() {
        const BATCHES: u64 = 40;
        const PER_BATCH: u64 = 25;
        let test = "pushes_survive_repeated_connection_loss_with_exact_counts";
        let Some(schema) = ScratchSchema::create(test).await else {
            return;
        };
        let s = schema.open(&PoolOptions::default()).await;
        let (patient, device) = enrolled(&s).await;
        let attempts = Arc::new(AtomicU64::new(0));
        let pusher = tokio::spawn({
            let s = s.clone();
            let attempts = attempts.clone();
            async move {
                let mut unavailable = 0;
                for b in 0..BATCHES {
                    let ops = batch(device, 1 + b * PER_BATCH, PER_BATCH);
                    unavailable += push_until_stored(&s, patient, &ops, &attempts).await;
                }
                unavailable
            }
        });
        // Cut again only after two more push attempts have started: a cut kills at most the
        // attempt in flight, so the one between two cuts runs on a fresh connection and the
        // pusher always makes progress, however slow the machine is.
        let mut cuts = 0;
        let mut cut_at = 0;
        while !pusher.is_finished() {
            let now = attempts.load(Ordering::SeqCst);
            if now >= cut_at + 2 {
                cuts += cut_connections(&schema).await;
                cut_at = now;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let unavailable = pusher.await.unwrap();
        eprintln!("{cuts} connections cut, {unavailable} pushes answered unavailable");
        assert!(cuts > 0, "no connection was cut");
        assert_stored_once(&s, patient, device, BATCHES * PER_BATCH).await;
        s.health().await.unwrap();
    }

    /// One connection, so that every push runs on the connection the one before it used.
    const ONE_CONNECTION: PoolOptions = PoolOptions {
        max_size: 1,
        timeout: Duration::from_secs(5),
    };

    /// A scratch schema for `test` opened on [`ONE_CONNECTION`], with a patient whose device
    /// has stored operations 1 to `stored`; `None` without a database.
    async fn on_one_connection(
        test: &str,
        stored: u64,
    ) -> Option<(ScratchSchema, PostgresStorage, Uuid, Uuid)> {
        let schema = ScratchSchema::create(test).await?;
        let s = schema.open(&ONE_CONNECTION).await;
        let (patient, device) = enrolled(&s).await;
        push_until_stored(&s, patient, &batch(device, 1, stored), &AtomicU64::new(0)).await;
        Some((schema, s, patient, device))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_push_whose_write_fails_commits_nothing_and_leaves_its_connection_clean() {
        let test = "a_push_whose_write_fails_commits_nothing_and_leaves_its_connection_clean";
        let Some((schema, s, patient, device)) = on_one_connection(test, 3).await else {
            return;
        };

        // The reads and the plan pass; the INSERT of the operations fails, in the round trip
        // that also carries the COMMIT.
        schema
            .query("ALTER TABLE ops ADD CONSTRAINT refuse_five CHECK (device_seq <> 5)")
            .await;
        let refused = s.push(patient, batch(device, 4, 3), Utc::now()).await;
        assert!(
            matches!(refused, Err(StorageError::Internal(_))),
            "{refused:?}"
        );
        let page = s.pull(patient, 0, 1_000).await.unwrap();
        assert_eq!(page.ops.len(), 3, "a failed push left a trace");
        s.health().await.unwrap();

        // On the same connection, outside any transaction: the next pushes store once, with no
        // gap in the cursors.
        schema
            .query("ALTER TABLE ops DROP CONSTRAINT refuse_five")
            .await;
        push_until_stored(&s, patient, &batch(device, 4, 3), &AtomicU64::new(0)).await;
        push_until_stored(&s, patient, &batch(device, 7, 1), &AtomicU64::new(0)).await;
        assert_stored_once(&s, patient, device, 7).await;
        let idle_in_transaction = sessions_where(&schema, IDLE_IN_TRANSACTION);
        assert_eq!(schema.query(&idle_in_transaction).await, ["0"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_push_cancelled_inside_its_transaction_rolls_back_before_the_next_one() {
        let test = "a_push_cancelled_inside_its_transaction_rolls_back_before_the_next_one";
        let Some((schema, s, patient, device)) = on_one_connection(test, 2).await else {
            return;
        };

        // The push waits for the counter row inside its transaction; then its request is
        // dropped, as a client that hangs up drops it.
        let (blocker, pushing) = push_blocked(&schema, &s, patient, batch(device, 3, 2)).await;
        pushing.abort();
        assert!(pushing.await.unwrap_err().is_cancelled());
        blocker.batch_execute("ROLLBACK").await.unwrap();

        // The connection went back to the pool with a rollback queued behind the statement it
        // was waiting on: once that statement ran, no transaction holds the patient's row.
        let idle_in_transaction = sessions_where(&schema, IDLE_IN_TRANSACTION);
        assert_eq!(
            eventually(&schema, &idle_in_transaction, "0").await,
            ["0"],
            "the cancelled push left its transaction open"
        );
        // The same operations then store once, after the two before.
        let stored = tokio::time::timeout(
            Duration::from_secs(10),
            s.push(patient, batch(device, 3, 2), Utc::now()),
        )
        .await
        .expect("the next push is not held up by the cancelled one");
        assert!(stored
            .unwrap()
            .iter()
            .all(|r| r.status == PushStatus::Applied));
        assert_stored_once(&s, patient, device, 4).await;
    }
}
