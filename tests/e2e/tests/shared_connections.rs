//! Diaries of two patients sync on one shared set of connections, on every backend this run can
//! reach: each request carries its own diary's token, so each diary receives its own patient's
//! operations and none of the other's, and the devices of one patient converge.

use heeldiary_client::{sync_with, Connections, SyncOptions};
use heeldiary_e2e::{
    another_device, enrolled_store, entry_states, op_keys, runtime, sample_entry, Backend, Server,
};

#[test]
fn diaries_sharing_connections_see_only_their_own_patient() {
    let rt = runtime();
    let connections = Connections::new().expect("connections");
    let options = SyncOptions::default();
    for backend in Backend::all("diaries_sharing_connections_see_only_their_own_patient") {
        let name = backend.name();
        let server = Server::start(&backend);
        let (_, code_a) = server.add_patient();
        let (_, code_b) = server.add_patient();
        let mut phone_a = rt.block_on(enrolled_store(&server.url, &code_a));
        let mut tablet_a = another_device(&rt, &server, &phone_a, &server.url);
        let mut phone_b = rt.block_on(enrolled_store(&server.url, &code_b));
        for (i, store) in [&mut phone_a, &mut tablet_a, &mut phone_b]
            .into_iter()
            .enumerate()
        {
            store.log(sample_entry(i)).expect("log");
        }

        // Twice round, so that each device of patient A also receives what its sibling pushed
        // after it had synced.
        for _ in 0..2 {
            for store in [&mut phone_a, &mut tablet_a, &mut phone_b] {
                rt.block_on(sync_with(store, &options, &connections))
                    .expect("sync");
            }
        }

        assert_eq!(op_keys(&phone_a), op_keys(&tablet_a), "{name}");
        assert_eq!(op_keys(&phone_a).len(), 2, "{name}");
        assert_eq!(entry_states(&phone_a), entry_states(&tablet_a), "{name}");
        assert_eq!(
            op_keys(&phone_b).len(),
            1,
            "{name}: patient B sees only its own entry"
        );
        assert!(
            op_keys(&phone_b).is_disjoint(&op_keys(&phone_a)),
            "{name}: no operation crosses patients"
        );
    }
}
