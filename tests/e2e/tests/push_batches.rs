//! A push in many batches, against the real server binary: batches are stored in order (the
//! next goes out while the last is being stored, naming the operation it follows), a batch
//! larger than the server takes is halved, and every operation ends on the server exactly once.

use heeldiary_client::{sync, SyncOptions};
use heeldiary_core::{EntryInput, MAX_NOTE_CHARS};
use heeldiary_e2e::proxy::{Fault, Proxy, RequestLine};
use heeldiary_e2e::{
    another_device, imported_diary, op_keys, runtime, sample_entry, Backend, Server,
};
use std::time::Duration;
use tokio::runtime::Runtime;

/// Entries with the longest note: a batch of all of them inflates past the server's body
/// limit, half of them fit.
const LONG_ENTRIES: usize = 4_000;
/// Entries with a short note, logged after the long ones.
const SHORT_ENTRIES: usize = 7;

fn long_entry(i: usize) -> EntryInput {
    serde_json::from_value(serde_json::json!({
        "day": format!("2025-{:02}-{:02}", 1 + (i / 28) % 12, 1 + i % 28),
        "first_step_pain": i % 11,
        "note": "n".repeat(MAX_NOTE_CHARS),
    }))
    .expect("a valid entry")
}

/// Imports `inputs` into a new diary of a new patient, pushes them to `server` in batches of
/// `push_batch`, and checks that every entry was stored once, that the diary holds every own
/// operation acknowledged, and that a second device pulls each operation once. Returns the
/// operation each push request named as the one it follows, in the order a proxy in front of
/// the server saw them (`None` for one that follows none).
fn push_and_pull_once(
    rt: &Runtime,
    backend: &Backend,
    server: &Server,
    inputs: impl IntoIterator<Item = EntryInput>,
    push_batch: usize,
) -> Vec<Option<u64>> {
    let proxy = rt.block_on(Proxy::start(server.port()));
    let inputs: Vec<EntryInput> = inputs.into_iter().collect();
    let entries = inputs.len();
    let mut writer = imported_diary(rt, server, &proxy.url, inputs);
    let options = SyncOptions {
        push_batch,
        ..SyncOptions::default()
    };
    let summary = rt
        .block_on(sync(&mut writer, &options))
        .unwrap_or_else(|e| panic!("{}: push: {e}", backend.name()));
    let pushes = proxy
        .exchanges()
        .iter()
        .filter(|e| e.request.path() == "/v1/push")
        .map(|e| e.request.query("after_seq"))
        .collect();
    assert_eq!(
        (summary.pushed, summary.already_on_server),
        (entries, 0),
        "{}: {summary:?}",
        backend.name()
    );
    let state = writer.sync_state().unwrap();
    assert_eq!(
        (state.acked_seq, state.pending),
        (entries as u64, 0),
        "{}: every own operation is acknowledged",
        backend.name()
    );

    let mut reader = another_device(rt, server, &writer, &server.url);
    let pulled = rt
        .block_on(sync(&mut reader, &SyncOptions::default()))
        .unwrap_or_else(|e| panic!("{}: pull: {e}", backend.name()));
    assert_eq!(
        (pulled.pulled, pulled.already_held),
        (entries, 0),
        "{}: the feed holds every operation once",
        backend.name()
    );
    assert_eq!(op_keys(&reader), op_keys(&writer), "{}", backend.name());

    // Nothing is left to push: a second sync sends nothing again.
    let again = rt.block_on(sync(&mut writer, &options)).unwrap();
    assert_eq!(
        (again.pushed, again.already_on_server),
        (0, 0),
        "{}",
        backend.name()
    );
    pushes
}

/// The first batch is refused as too large and nothing of it is stored; halved, every entry
/// goes once.
#[test]
fn a_batch_too_large_for_the_server_is_halved_and_each_operation_stored_once() {
    let rt = runtime();
    for backend in
        Backend::all("a_batch_too_large_for_the_server_is_halved_and_each_operation_stored_once")
    {
        let server = Server::start(&backend);
        let inputs = (0..LONG_ENTRIES)
            .map(long_entry)
            .chain((0..SHORT_ENTRIES).map(sample_entry));
        let pushes = push_and_pull_once(&rt, &backend, &server, inputs, LONG_ENTRIES);
        // The refused batch, its two halves, and the short entries (a batch that reaches the
        // server before the one it follows is refused and sent again).
        assert_eq!(pushes[..2], [None, None], "{}", backend.name());
        assert!(pushes.len() >= 4, "{}: {pushes:?}", backend.name());
        assert_eq!(
            followed(&pushes),
            vec![2_000, LONG_ENTRIES as u64],
            "{}",
            backend.name()
        );
    }
}

/// The distinct operations push requests named as the ones they follow, in order.
fn followed(pushes: &[Option<u64>]) -> Vec<u64> {
    let named: std::collections::BTreeSet<u64> = pushes.iter().flatten().copied().collect();
    named.into_iter().collect()
}

#[test]
fn batches_pushed_in_order_are_each_stored_once_and_acknowledged() {
    let rt = runtime();
    for backend in Backend::all("batches_pushed_in_order_are_each_stored_once_and_acknowledged") {
        let server = Server::start(&backend);
        let pushes = push_and_pull_once(&rt, &backend, &server, (0..101).map(sample_entry), 10);
        assert_eq!(pushes[0], None, "{}", backend.name());
        assert!(pushes.len() >= 11, "{}: {pushes:?}", backend.name());
        assert_eq!(
            followed(&pushes),
            (1..=10).map(|b| b * 10).collect::<Vec<u64>>(),
            "{}",
            backend.name()
        );
    }
}

/// A proxy in front of `server` that holds each push answer a little, so that the next batch
/// is on its way meanwhile.
fn holding_push_answers(rt: &Runtime, server: &Server) -> Proxy {
    let proxy = rt.block_on(Proxy::start(server.port()));
    proxy.set_rule(|request| {
        if request.path() == "/v1/push" {
            Fault::Delay(Duration::from_millis(30))
        } else {
            Fault::Pass
        }
    });
    proxy
}

/// Once the server's first answer shows it keeps pushes in order, each later batch names the
/// last operation of the batch before it (its sequence number and the stamp the diary holds),
/// and goes out before that one is answered; every operation is still stored once.
#[test]
fn later_batches_name_the_batch_they_follow() {
    let rt = runtime();
    for backend in Backend::all("later_batches_name_the_batch_they_follow") {
        let server = Server::start(&backend);
        let proxy = holding_push_answers(&rt, &server);
        let mut writer = imported_diary(&rt, &server, &proxy.url, (0..50).map(sample_entry));
        let options = SyncOptions {
            push_batch: 10,
            ..SyncOptions::default()
        };
        let summary = rt.block_on(sync(&mut writer, &options)).unwrap();
        assert_eq!(
            (summary.pushed, summary.already_on_server),
            (50, 0),
            "{}",
            backend.name()
        );
        let pushes: Vec<RequestLine> = proxy
            .exchanges()
            .into_iter()
            .map(|e| e.request)
            .filter(|r| r.path() == "/v1/push")
            .collect();
        assert!(pushes
            .iter()
            .all(|r| r.query::<String>("ack").as_deref() == Some("ordered")));
        // The first follows nothing; its answer shows the server keeps pushes in order.
        assert_eq!(pushes[0].query::<u64>("after_seq"), None);
        let stamps: std::collections::HashMap<u64, String> = writer
            .all_ops()
            .unwrap()
            .into_iter()
            .map(|op| (op.device_seq, op.hlc.to_string()))
            .collect();
        let mut named = Vec::new();
        for push in &pushes[1..] {
            // Two batches sent together may reach the server in either order; one that comes
            // before the batch it follows is refused and sent again, so a name may repeat.
            let seq: u64 = push.query("after_seq").expect("a later batch names one");
            assert_eq!(seq % 10, 0, "{}: {}", backend.name(), push.target);
            assert_eq!(
                push.query::<String>("after_hlc").as_ref(),
                stamps.get(&seq),
                "{}: {}",
                backend.name(),
                push.target
            );
            named.push(seq);
        }
        named.dedup();
        named.sort_unstable();
        named.dedup();
        assert_eq!(named, vec![10, 20, 30, 40], "{}", backend.name());
        assert_eq!(writer.sync_state().unwrap().pending, 0);
    }
}

/// A batch refused for a clock far ahead while the next is on its way: the next is refused
/// too (it follows an operation never stored), the diary re-stamps what it had not pushed and
/// pushes it again, and every entry is stored once.
#[test]
fn a_clock_refusal_with_the_next_batch_on_its_way_stores_every_entry_once() {
    let rt = runtime();
    for backend in
        Backend::all("a_clock_refusal_with_the_next_batch_on_its_way_stores_every_entry_once")
    {
        let server = Server::start(&backend);
        let proxy = holding_push_answers(&rt, &server);
        let mut writer = imported_diary(&rt, &server, &proxy.url, (0..10).map(sample_entry));
        // The clock jumps two hours ahead for the next twenty entries.
        writer.set_time_source(std::sync::Arc::new(|| {
            chrono::Local::now().fixed_offset() + chrono::Duration::hours(2)
        }));
        for i in 10..30 {
            writer.log(sample_entry(i)).unwrap();
        }
        let options = SyncOptions {
            push_batch: 10,
            ..SyncOptions::default()
        };
        let summary = rt.block_on(sync(&mut writer, &options)).unwrap();
        assert_eq!(
            (summary.pushed, summary.already_on_server, summary.restamped),
            (30, 0, 20),
            "{}",
            backend.name()
        );
        let named: Vec<u64> = proxy
            .exchanges()
            .iter()
            .filter(|e| e.request.path() == "/v1/push")
            .filter_map(|e| e.request.query("after_seq"))
            .collect();
        assert!(
            named.contains(&20),
            "{}: the batch after the refused one went out beside it: {named:?}",
            backend.name()
        );
        let mut reader = another_device(&rt, &server, &writer, &server.url);
        let pulled = rt
            .block_on(sync(&mut reader, &SyncOptions::default()))
            .unwrap();
        assert_eq!(pulled.pulled, 30, "{}", backend.name());
        assert_eq!(op_keys(&reader), op_keys(&writer), "{}", backend.name());
    }
}
