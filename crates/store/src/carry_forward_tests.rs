//! Diaries written by every version before the compact file (0005) open with all they held:
//! entries, edits, other devices' operations with their arrival times, the push queue and the
//! device's sequence and clock.

use chrono::{DateTime, Utc};
use heeldiary_core::{Field, Hlc, Op};
use rusqlite::{params, Connection};
use serde_json::json;
use uuid::Uuid;

use crate::schema::{migrate, MIGRATIONS};
use crate::Store;

fn op(entry: Uuid, device: Uuid, seq: u64, wall_ms: u64, patch: serde_json::Value) -> Op {
    Op {
        entry_id: entry,
        device_id: device,
        device_seq: seq,
        hlc: Hlc {
            wall_ms,
            counter: seq as u32,
            node: device,
        },
        patch: serde_json::from_value(patch).unwrap(),
    }
}

fn write_text_op(conn: &Connection, op: &Op, pulled: Option<(u64, &str)>) {
    conn.execute(
        "INSERT INTO ops (entry_id, device_id, device_seq, hlc, patch, server_cursor, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            op.entry_id.to_string(),
            op.device_id.to_string(),
            op.device_seq,
            op.hlc.to_string(),
            serde_json::to_string(&op.patch).unwrap(),
            pulled.map(|(cursor, _)| cursor),
            pulled.map(|(_, at)| at),
        ],
    )
    .unwrap();
}

#[test]
fn every_text_log_version_carries_forward() {
    let compact = MIGRATIONS
        .iter()
        .position(|(name, _)| *name == "0005_compact_file")
        .expect("the compact file migration") as u32;
    for version in 1..=compact {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("diary.sqlite3");
        let (own, other) = (Uuid::now_v7(), Uuid::now_v7());
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let at = "2026-11-01T08:00:00.000+01:00";
        let ops = [
            op(
                a,
                own,
                1,
                1_000,
                json!({"day": "2026-11-01", "recorded_at": at, "rest_pain": 3}),
            ),
            op(a, own, 2, 2_000, json!({"rest_pain": 5, "note": "a\u{0}b"})),
            op(
                b,
                own,
                3,
                3_000,
                json!({"day": "2026-11-03", "recorded_at": at, "treatments": ["stretching"]}),
            ),
        ];
        let pulled = op(
            c,
            other,
            1,
            1_500,
            json!({"day": "2026-11-02", "recorded_at": at}),
        );
        let edit = op(a, other, 2, 2_500, json!({"numbness": "mild"}));
        let received = "2026-11-01T09:00:00.123+00:00";
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate(&mut conn, version).unwrap();
            conn.execute(
                "INSERT INTO device (singleton, device_id, created_at) VALUES (1, ?1, ?2)",
                params![own.to_string(), at],
            )
            .unwrap();
            write_text_op(&conn, &ops[0], None);
            write_text_op(&conn, &pulled, Some((1, received)));
            write_text_op(&conn, &ops[1], None);
            write_text_op(&conn, &edit, Some((2, received)));
            write_text_op(&conn, &ops[2], None);
            conn.execute("UPDATE sync_state SET acked_seq = 2", [])
                .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        let listed: Vec<Uuid> = store
            .list(None, None)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(listed, [a, c, b], "from version {version}");
        let merged = store.get(a).unwrap();
        assert_eq!(merged.rest_pain, Some(5));
        assert_eq!(merged.note.as_deref(), Some("a\u{0}b"));
        let history = store.history(a).unwrap();
        assert_eq!(history.len(), 3);
        let received: DateTime<Utc> = received.parse().unwrap();
        assert_eq!(history[2].received_at, Some(received));
        assert_eq!(history[2].changes[0].field, Field::Numbness);
        assert_eq!(store.sync_state().unwrap().pending, 1);
        assert_eq!(store.unpushed(10).unwrap(), [ops[2].clone()]);
        let mut all = store.all_ops().unwrap();
        all.sort_by_key(|op| (op.device_id, op.device_seq));
        let mut expected = vec![
            ops[0].clone(),
            ops[1].clone(),
            ops[2].clone(),
            pulled.clone(),
            edit.clone(),
        ];
        expected.sort_by_key(|op| (op.device_id, op.device_seq));
        assert_eq!(all, expected, "every operation exactly as it was");
        let next = store
            .log(serde_json::from_value(json!({"day": "2026-11-04"})).unwrap())
            .unwrap();
        let written = &store.history(next.id).unwrap()[0];
        assert_eq!(written.device_seq, 4);
        assert!(written.hlc > ops[2].hlc);
    }
}
