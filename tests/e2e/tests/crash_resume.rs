//! Interrupted syncs of large diaries, against the real server binary:
//!
//! - the server is killed (SIGKILL) in the middle of a large push, at several moments, each time
//!   restarted on the same data and port; once the device syncs again, the server holds every
//!   operation exactly once;
//! - a first pull of a large feed is cut off halfway; the next sync resumes at the cursor where
//!   it stopped, so at most the one page that was cut is transferred twice.

use std::time::{Duration, Instant};

use heeldiary_client::{sync, ClientError, SyncOptions};
use heeldiary_e2e::proxy::{Fault, Proxy, RequestLine};
use heeldiary_e2e::{
    another_device, impatient_sync, imported_diary, op_keys, runtime, sample_entry, Backend, Server,
};

/// Entries of the diary pushed while the server is killed.
const CRASH_ENTRIES: usize = 20_000;

/// Push requests of one sync that reach the server before it is killed (a sync of the whole
/// diary makes 40 at the default batch size).
const PUSHES_BEFORE_KILL: usize = 5;

/// The server is killed once per entry, this many milliseconds after the last counted push
/// request reached it: at once (the request is still being read), and later (while the server
/// may be writing the batch, or has answered it).
const KILL_LINGER_MS: [u64; 3] = [0, 50, 100];

/// Operations per pull page in the resume tests.
const PAGE: usize = 1_000;

/// Bytes of the cut page's answer that reach the device: its head and the start of its body.
const CUT_AFTER_BYTES: usize = 4_096;

fn is_push(request: &RequestLine) -> bool {
    request.path() == "/v1/push"
}

fn is_pull(request: &RequestLine) -> bool {
    request.path() == "/v1/pull"
}

#[test]
fn a_server_killed_during_a_large_push_ends_with_every_operation_once() {
    let rt = runtime();
    for backend in
        Backend::all("a_server_killed_during_a_large_push_ends_with_every_operation_once")
    {
        let mut server = Server::start(&backend);
        let port = server.port();
        // The proxy only watches here: it tells when the push is under way.
        let proxy = rt.block_on(Proxy::start(port));
        let mut device = imported_diary(
            &rt,
            &server,
            &proxy.url,
            (0..CRASH_ENTRIES).map(sample_entry),
        );
        let own_ops = op_keys(&device);
        // Batches well below the server's limit, so the kills land among many pushes.
        let options = SyncOptions {
            push_batch: 500,
            ..impatient_sync(3)
        };

        for linger in KILL_LINGER_MS {
            let pushes_before = proxy.exchanges().len();
            let pushing = {
                let (handle, options) = (rt.handle().clone(), options.clone());
                std::thread::spawn(move || {
                    let outcome = handle.block_on(sync(&mut device, &options));
                    (device, outcome)
                })
            };
            let started = Instant::now();
            while pushes_seen(&proxy, pushes_before) < PUSHES_BEFORE_KILL {
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "{}: the push never got under way",
                    backend.name()
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(linger));
            server.kill();
            let interrupted;
            (device, interrupted) = pushing.join().expect("sync thread");
            assert!(
                matches!(interrupted, Err(ClientError::Network { .. })),
                "{}: the kill should have cut the push short: {interrupted:?}",
                backend.name()
            );
            server = Server::start_on(server.backend_args.clone(), &format!("127.0.0.1:{port}"));
        }

        let acked = device.sync_state().unwrap().acked_seq as usize;
        let resumed = rt
            .block_on(sync(&mut device, &options))
            .unwrap_or_else(|e| panic!("{}: sync after the restart: {e}", backend.name()));
        // Only the batch in flight at the last kill can have been stored without its answer.
        assert_eq!(
            resumed.pushed + resumed.already_on_server,
            CRASH_ENTRIES - acked,
            "{}",
            backend.name()
        );
        assert!(
            resumed.already_on_server <= options.push_batch,
            "{}: {resumed:?}",
            backend.name()
        );
        assert!(device.unpushed(1).unwrap().is_empty());

        let mut fresh = another_device(&rt, &server, &device, &server.url);
        rt.block_on(sync(&mut fresh, &SyncOptions::default()))
            .expect("a fresh device pulls everything");
        assert_eq!(op_keys(&fresh), own_ops, "{}", backend.name());
        assert_eq!(
            fresh.list(None, None).unwrap().len(),
            CRASH_ENTRIES,
            "{}",
            backend.name()
        );
    }
}

/// Push requests that reached the proxy after the first `skip` requests.
fn pushes_seen(proxy: &Proxy, skip: usize) -> usize {
    proxy.exchanges()[skip..]
        .iter()
        .filter(|e| is_push(&e.request))
        .count()
}

/// A new device pulls a patient's feed of `entries` operations; the network breaks for good in
/// the middle of the first pull (the answer of one page cut short, every later request dropped).
/// The next sync must start from the cursor of the last applied page and bring exactly the rest.
fn cut_off_pull_resumes_where_it_stopped(test: &str, entries: usize) {
    assert_eq!(entries % PAGE, 0, "whole pages keep the counts exact");
    let pages = entries / PAGE;
    let cut_page = pages / 2 + 1;
    let rt = runtime();
    for backend in Backend::all(test) {
        let server = Server::start(&backend);
        let mut writer = imported_diary(&rt, &server, &server.url, (0..entries).map(sample_entry));
        rt.block_on(sync(&mut writer, &SyncOptions::default()))
            .expect("the writer pushes its diary");

        let proxy = rt.block_on(Proxy::start(server.port()));
        let mut reader = another_device(&rt, &server, &writer, &proxy.url);
        let mut pulls = 0;
        proxy.set_rule(move |request| {
            pulls += usize::from(is_pull(request));
            match pulls.cmp(&cut_page) {
                std::cmp::Ordering::Less => Fault::Pass,
                std::cmp::Ordering::Equal => Fault::CutResponse(CUT_AFTER_BYTES),
                std::cmp::Ordering::Greater => Fault::DropRequest,
            }
        });
        let options = SyncOptions {
            pull_limit: PAGE as u32,
            ..impatient_sync(3)
        };
        let cut = rt.block_on(sync(&mut reader, &options));
        assert!(
            matches!(cut, Err(ClientError::Network { .. })),
            "{}: {cut:?}",
            backend.name()
        );
        let stopped_at = reader.sync_state().unwrap().pull_cursor;
        assert!(stopped_at > 0, "{}: no page was kept", backend.name());
        assert_eq!(
            op_keys(&reader).len(),
            (cut_page - 1) * PAGE,
            "{}: the pages before the cut are kept, the cut one is not",
            backend.name()
        );

        proxy.pass_all();
        let first_of_second_sync = proxy.exchanges().len();
        let resumed = rt
            .block_on(sync(&mut reader, &options))
            .unwrap_or_else(|e| panic!("{}: {e}", backend.name()));
        assert_eq!(resumed.pulled, entries - (cut_page - 1) * PAGE);
        assert_eq!(op_keys(&reader), op_keys(&writer), "{}", backend.name());
        assert_eq!(reader.list(None, None).unwrap().len(), entries);

        let exchanges = proxy.exchanges();
        let resumed_after = exchanges[first_of_second_sync..]
            .iter()
            .find(|e| is_pull(&e.request))
            .and_then(|e| e.request.query::<u64>("after"));
        assert_eq!(resumed_after, Some(stopped_at), "{}", backend.name());
        // Pages whose answer reached the device, whole or in part, over both syncs.
        let transferred = exchanges
            .iter()
            .filter(|e| is_pull(&e.request) && e.fault != Fault::DropRequest)
            .count();
        assert!(
            transferred <= pages + 1,
            "{}: {transferred} pages transferred for {pages}",
            backend.name()
        );
    }
}

#[test]
fn a_cut_off_first_pull_of_10_000_entries_resumes_where_it_stopped() {
    cut_off_pull_resumes_where_it_stopped(
        "a_cut_off_first_pull_of_10_000_entries_resumes_where_it_stopped",
        10_000,
    );
}

/// At full size: about a minute in a debug build, so it runs on request (`.ci/run` requests it):
/// `cargo test -p heeldiary-e2e --test crash_resume -- --ignored`.
#[test]
#[ignore = "about a minute in a debug build; run with -- --ignored"]
fn a_cut_off_first_pull_of_100_000_entries_resumes_where_it_stopped() {
    cut_off_pull_resumes_where_it_stopped(
        "a_cut_off_first_pull_of_100_000_entries_resumes_where_it_stopped",
        100_000,
    );
}
