//! A device's pulls leave out the own operations the server acknowledged to it, on every backend
//! this run can reach: the first sync of a large diary downloads none of what it uploaded, while
//! every other device of the patient still receives all of it.

use heeldiary_client::{sync, SyncOptions};
use heeldiary_core::wire::PULL_HELD_OWN_THROUGH;
use heeldiary_e2e::proxy::{Proxy, RequestLine};
use heeldiary_e2e::{
    another_device, entry_states, imported_diary, op_keys, runtime, sample_entry, Backend, Server,
};

/// Entries of the diary's first sync.
const ENTRIES: usize = 600;

/// Operations per pull page: small, so that a feed sent back whole would take many pages.
const PAGE: u32 = 50;

fn pulls(proxy: &Proxy) -> Vec<RequestLine> {
    proxy
        .exchanges()
        .into_iter()
        .map(|exchange| exchange.request)
        .filter(|request| request.path() == "/v1/pull")
        .collect()
}

#[test]
fn a_first_sync_pulls_none_of_its_own_operations_back() {
    let rt = runtime();
    let options = SyncOptions {
        pull_limit: PAGE,
        ..SyncOptions::default()
    };
    for backend in Backend::all("a_first_sync_pulls_none_of_its_own_operations_back") {
        let name = backend.name();
        let server = Server::start(&backend);
        let proxy = rt.block_on(Proxy::start(server.port()));
        let mut phone = imported_diary(&rt, &server, &proxy.url, (0..ENTRIES).map(sample_entry));

        let first = rt.block_on(sync(&mut phone, &options)).expect("first sync");
        assert_eq!(first.pushed, ENTRIES, "{name}");
        assert_eq!((first.pulled, first.already_held), (0, 0), "{name}");
        // One page, empty, names the whole acknowledged diary and ends the feed.
        let asked = pulls(&proxy);
        assert_eq!(asked.len(), 1, "{name}: {asked:?}");
        assert_eq!(
            asked[0].query::<usize>(PULL_HELD_OWN_THROUGH),
            Some(ENTRIES),
            "{name}"
        );
        let cursor = phone.sync_state().expect("sync state").pull_cursor;
        assert_eq!(
            cursor, ENTRIES as u64,
            "{name}: the cursor moved past the own operations"
        );

        let mut tablet = another_device(&rt, &server, &phone, &proxy.url);
        let pulled = rt
            .block_on(sync(&mut tablet, &options))
            .expect("tablet sync");
        assert_eq!((pulled.pulled, pulled.already_held), (ENTRIES, 0), "{name}");

        // Either device's next edit reaches the other, and neither gets its own back.
        tablet
            .log(sample_entry(ENTRIES))
            .expect("the tablet logs an entry");
        let tablet_push = rt
            .block_on(sync(&mut tablet, &options))
            .expect("tablet sync");
        assert_eq!((tablet_push.pushed, tablet_push.pulled), (1, 0), "{name}");
        assert_eq!(tablet_push.already_held, 0, "{name}");
        phone
            .log(sample_entry(ENTRIES + 1))
            .expect("the phone logs");
        let phone_sync = rt.block_on(sync(&mut phone, &options)).expect("phone sync");
        assert_eq!(
            (
                phone_sync.pushed,
                phone_sync.pulled,
                phone_sync.already_held
            ),
            (1, 1, 0),
            "{name}"
        );
        let tablet_pull = rt
            .block_on(sync(&mut tablet, &options))
            .expect("tablet sync");
        assert_eq!(
            (tablet_pull.pulled, tablet_pull.already_held),
            (1, 0),
            "{name}"
        );
        assert_eq!(op_keys(&phone).len(), ENTRIES + 2, "{name}");
        assert_eq!(op_keys(&phone), op_keys(&tablet), "{name}");
        assert_eq!(entry_states(&phone), entry_states(&tablet), "{name}");
    }
}
