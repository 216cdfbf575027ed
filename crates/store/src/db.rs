//! Rows of the diary file: the operation log with its row codec, entry states folded from it,
//! and the device row. The diary API (`lib.rs`) and the sync calls (`sync.rs`) both sit on these
//! functions; nothing here reads a clock or knows about sync.
//!
//! The log is keyed by entry, so an entry's operations sit together and its state is their
//! merge, read when asked: an entry written once is stored once. Ids are 16-byte blobs, devices
//! are numbered in the file (`devices`), stamps are integers and patches use the binary form of
//! `codec.rs`.

use chrono::{DateTime, Utc};
use heeldiary_core::{EntryState, Hlc, Op};
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use crate::codec::{decode_patch, encode_patch};
use crate::error::{Result, StoreError};

/// This device's id, made and recorded the first time the file is opened.
pub(crate) fn ensure_device(conn: &Connection) -> Result<Uuid> {
    let existing: Option<String> = conn
        .query_row("SELECT device_id FROM device", [], |r| r.get(0))
        .optional()?;
    let text = match existing {
        Some(text) => text,
        None => {
            let id = Uuid::now_v7().to_string();
            conn.execute(
                "INSERT INTO device (singleton, device_id, created_at) VALUES (1, ?1, ?2)",
                params![id, Utc::now().to_rfc3339()],
            )?;
            id
        }
    };
    Uuid::parse_str(&text).map_err(StoreError::corrupt)
}

/// The correction of the device clock learnt from the server, in milliseconds.
pub(crate) fn clock_offset_ms(conn: &Connection) -> Result<i64> {
    // Read on every write and every sync: prepared once per open.
    Ok(conn
        .prepare_cached("SELECT clock_offset_ms FROM sync_state")?
        .query_row([], |r| r.get(0))?)
}

/// The number of `device` in this file, given to it the first time it is needed.
pub(crate) fn device_no(conn: &Connection, device: Uuid) -> Result<i64> {
    let known = conn
        .prepare_cached("SELECT device_no FROM devices WHERE device_id = ?1")?
        .query_row([device.as_bytes().as_slice()], |r| r.get(0))
        .optional()?;
    match known {
        Some(no) => Ok(no),
        None => Ok(conn
            .prepare_cached("INSERT INTO devices (device_id) VALUES (?1) RETURNING device_no")?
            .query_row([device.as_bytes().as_slice()], |r| r.get(0))?),
    }
}

/// Device numbers looked up within one transaction, so that a page or an import of many
/// operations asks the file once per device rather than once per operation. Numbers are never
/// reused or changed, so a cache that lives no longer than its transaction stays true.
#[derive(Debug, Default)]
pub(crate) struct DeviceNumbers(std::collections::HashMap<Uuid, i64>);

impl DeviceNumbers {
    /// The number of `device` (see [`device_no`]).
    pub(crate) fn of(&mut self, conn: &Connection, device: Uuid) -> Result<i64> {
        if let Some(&no) = self.0.get(&device) {
            return Ok(no);
        }
        let no = device_no(conn, device)?;
        self.0.insert(device, no);
        Ok(no)
    }
}

/// Reads a 16-byte id.
pub(crate) fn uuid_from(bytes: &[u8]) -> Result<Uuid> {
    Uuid::from_slice(bytes).map_err(StoreError::corrupt)
}

/// Selects the columns [`read_op`] reads, from the log aliased `o`, then `seen_at_seq`;
/// queries add their own `WHERE` and `ORDER BY`.
pub(crate) const SELECT_OPS: &str = "SELECT o.entry_id, d.device_id, o.device_seq, o.hlc_ms,
        o.hlc_counter, n.device_id, o.patch, o.received_at, o.seen_at_seq
    FROM ops o JOIN devices d ON d.device_no = o.device_no
    LEFT JOIN devices n ON n.device_no = o.hlc_node";

/// Reads an operation, and when the server stored it, from a row of [`SELECT_OPS`].
pub(crate) fn read_op(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<(Op, Option<DateTime<Utc>>)>> {
    let entry = row.get_ref(0)?.as_blob()?;
    let device = row.get_ref(1)?.as_blob()?;
    let device_seq: u64 = row.get(2)?;
    let wall_ms: u64 = row.get(3)?;
    let counter: u32 = row.get(4)?;
    let node = row.get_ref(5)?.as_blob_or_null()?;
    let patch = row.get_ref(6)?.as_blob()?;
    let received_at: Option<i64> = row.get(7)?;
    Ok((|| {
        let device_id = uuid_from(device)?;
        let op = Op {
            entry_id: uuid_from(entry)?,
            device_id,
            device_seq,
            hlc: Hlc {
                wall_ms,
                counter,
                node: node.map(uuid_from).transpose()?.unwrap_or(device_id),
            },
            patch: decode_patch(patch).map_err(StoreError::corrupt)?,
        };
        let received_at = received_at
            .map(|ms| {
                DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| StoreError::corrupt(format!("time {ms} out of range")))
            })
            .transpose()?;
        Ok((op, received_at))
    })())
}

/// Appends an operation this device just wrote, and queues it for the next push. Its sequence
/// number is new by construction ([`Stamper::catch_up`](crate::stamper::Stamper::catch_up) runs
/// inside the same transaction), so a collision is a fault, never a write to drop quietly.
pub(crate) fn insert_local_op(
    conn: &Connection,
    numbers: &mut DeviceNumbers,
    op: &Op,
) -> Result<()> {
    let queued = conn
        .prepare_cached(
            "INSERT INTO outbox (device_seq, entry_id) VALUES (?1, ?2)
             ON CONFLICT (device_seq) DO NOTHING",
        )?
        .execute(params![op.device_seq, op.entry_id.as_bytes().as_slice()])?;
    if queued == 1 && insert_op(conn, numbers, op, None)? {
        Ok(())
    } else {
        Err(StoreError::corrupt(format!(
            "device sequence {} is taken",
            op.device_seq
        )))
    }
}

/// Appends an operation unless the log holds it already; `pulled` is, for a pulled one, when the
/// server stored it and the own sequence number this device had reached when it arrived.
/// Returns whether it was new.
pub(crate) fn insert_op(
    conn: &Connection,
    numbers: &mut DeviceNumbers,
    op: &Op,
    pulled: Option<(DateTime<Utc>, u64)>,
) -> Result<bool> {
    let writer = numbers.of(conn, op.device_id)?;
    let node = if op.hlc.node == op.device_id {
        None
    } else {
        Some(numbers.of(conn, op.hlc.node)?)
    };
    let inserted = conn
        .prepare_cached(
            "INSERT INTO ops (entry_id, device_no, device_seq, hlc_ms, hlc_counter, hlc_node,
                              patch, received_at, seen_at_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (entry_id, device_no, device_seq) DO NOTHING",
        )?
        .execute(params![
            op.entry_id.as_bytes().as_slice(),
            writer,
            op.device_seq,
            op.hlc.wall_ms,
            op.hlc.counter,
            node,
            encode_patch(&op.patch),
            pulled.map(|(at, _)| at.timestamp_millis()),
            pulled.map(|(_, seen_at_seq)| seen_at_seq),
        ])?;
    Ok(inserted == 1)
}

/// Whether the log holds any operation on `id`.
pub(crate) fn entry_exists(conn: &Connection, id: Uuid) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM ops WHERE entry_id = ?1 LIMIT 1")?
        .query_row([id.as_bytes().as_slice()], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Whether the log holds `op` itself under its key (entry, device, sequence): the same stamp.
pub(crate) fn holds_same_op(
    conn: &Connection,
    numbers: &mut DeviceNumbers,
    op: &Op,
) -> Result<bool> {
    let writer = numbers.of(conn, op.device_id)?;
    let held: Option<(u64, u32, Option<Vec<u8>>)> = conn
        .prepare_cached(
            "SELECT o.hlc_ms, o.hlc_counter, n.device_id FROM ops o
             LEFT JOIN devices n ON n.device_no = o.hlc_node
             WHERE o.entry_id = ?1 AND o.device_no = ?2 AND o.device_seq = ?3",
        )?
        .query_row(
            params![op.entry_id.as_bytes().as_slice(), writer, op.device_seq],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((wall_ms, counter, node)) = held else {
        return Ok(false);
    };
    let node = node.map(|n| uuid_from(&n)).transpose()?;
    Ok(Hlc {
        wall_ms,
        counter,
        node: node.unwrap_or(op.device_id),
    } == op.hlc)
}

/// Whether this device's own sequence number `device_seq` is queued for a push on another
/// entry than `entry_id`: an operation another copy of this diary wrote under the same number.
pub(crate) fn own_seq_queued_elsewhere(
    conn: &Connection,
    device_seq: u64,
    entry_id: Uuid,
) -> Result<bool> {
    let queued: Option<Vec<u8>> = conn
        .prepare_cached("SELECT entry_id FROM outbox WHERE device_seq = ?1")?
        .query_row([device_seq], |r| r.get(0))
        .optional()?;
    Ok(queued.is_some_and(|queued| queued != entry_id.as_bytes()))
}

/// Whether the log holds an operation on `op`'s entry other than `op` itself: only then can
/// `op` dispute a field. One step of the primary key, no row decoded.
pub(crate) fn entry_has_other_ops(
    conn: &Connection,
    numbers: &mut DeviceNumbers,
    op: &Op,
) -> Result<bool> {
    let writer = numbers.of(conn, op.device_id)?;
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM ops WHERE entry_id = ?1 AND (device_no, device_seq) != (?2, ?3)
             LIMIT 1",
        )?
        .query_row(
            params![op.entry_id.as_bytes().as_slice(), writer, op.device_seq],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Every operation on `id` with when the server stored it, oldest stamp first.
pub(crate) fn ops_of(conn: &Connection, id: Uuid) -> Result<Vec<(Op, Option<DateTime<Utc>>)>> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT_OPS} WHERE o.entry_id = ?1"))?;
    let rows = stmt.query_map([id.as_bytes().as_slice()], read_op)?;
    let mut ops = rows.map(|row| row?).collect::<Result<Vec<_>>>()?;
    ops.sort_by_key(|(op, _)| op.hlc);
    Ok(ops)
}

/// The state of an entry, or `None` when the file has no operation on it.
pub(crate) fn load_state(conn: &Connection, id: Uuid) -> Result<Option<EntryState>> {
    let ops = ops_of(conn, id)?;
    if ops.is_empty() {
        return Ok(None);
    }
    let mut state = EntryState::default();
    for (op, _) in &ops {
        state.apply(op);
    }
    Ok(Some(state))
}

/// Calls `each` with every entry and its state, in entry-id order, reading the log once.
pub(crate) fn for_each_state(
    conn: &Connection,
    mut each: impl FnMut(Uuid, EntryState) -> Result<()>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT_OPS} ORDER BY o.entry_id"))?;
    let mut current: Option<(Uuid, EntryState)> = None;
    for row in stmt.query_map([], read_op)? {
        let (op, _) = row??;
        match &mut current {
            Some((id, state)) if *id == op.entry_id => {
                state.apply(&op);
            }
            _ => {
                if let Some((id, state)) = current.take() {
                    each(id, state)?;
                }
                let mut state = EntryState::default();
                state.apply(&op);
                current = Some((op.entry_id, state));
            }
        }
    }
    if let Some((id, state)) = current {
        each(id, state)?;
    }
    Ok(())
}

/// Migration 0005: copies the text log of versions 1 to 4 (`ops_text`) into the compact one,
/// queues the own operations the server has not acknowledged, and keeps the newest own sequence
/// and stamp beside the device.
pub(crate) fn carry_text_log_forward(conn: &Connection) -> Result<()> {
    let own: Option<String> = conn
        .query_row("SELECT device_id FROM device", [], |r| r.get(0))
        .optional()?;
    let own = own
        .map(|text| Uuid::parse_str(&text).map_err(StoreError::corrupt))
        .transpose()?;
    let acked: u64 = conn.query_row("SELECT acked_seq FROM sync_state", [], |r| r.get(0))?;
    let mut stmt = conn.prepare(
        "SELECT entry_id, device_id, device_seq, hlc, patch, received_at FROM ops_text
         ORDER BY local_seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut numbers = DeviceNumbers::default();
    let (mut last_seq, mut last_hlc) = (0u64, None::<Hlc>);
    // Arrival order, kept as the own sequence number reached when a pulled operation arrived.
    while let Some(row) = rows.next()? {
        let text = |i: usize| -> Result<String> { Ok(row.get::<_, String>(i)?) };
        let op = Op {
            entry_id: Uuid::parse_str(&text(0)?).map_err(StoreError::corrupt)?,
            device_id: Uuid::parse_str(&text(1)?).map_err(StoreError::corrupt)?,
            device_seq: row.get(2)?,
            hlc: text(3)?.parse().map_err(StoreError::corrupt)?,
            patch: serde_json::from_str(&text(4)?).map_err(StoreError::corrupt)?,
        };
        let received_at = row
            .get::<_, Option<String>>(5)?
            .map(|t| DateTime::parse_from_rfc3339(&t).map(|t| t.to_utc()))
            .transpose()
            .map_err(StoreError::corrupt)?;
        insert_op(
            conn,
            &mut numbers,
            &op,
            received_at.map(|at| (at, last_seq)),
        )?;
        if Some(op.device_id) == own {
            if op.device_seq > acked {
                conn.prepare_cached("INSERT INTO outbox (device_seq, entry_id) VALUES (?1, ?2)")?
                    .execute(params![op.device_seq, op.entry_id.as_bytes().as_slice()])?;
            }
            last_seq = last_seq.max(op.device_seq);
            last_hlc = last_hlc.max(Some(op.hlc));
        }
    }
    let kept: Option<String> = conn
        .query_row("SELECT last_hlc FROM device", [], |r| r.get(0))
        .optional()?
        .flatten();
    let kept = kept
        .map(|t| t.parse::<Hlc>().map_err(StoreError::corrupt))
        .transpose()?;
    if let Some(newest) = last_hlc.max(kept) {
        conn.execute(
            "UPDATE device SET last_seq = ?1, last_hlc = ?2",
            params![last_seq, newest.to_string()],
        )?;
    }
    Ok(())
}

/// Migration step: a diary from before sequence numbers given up were recorded may have given
/// some up already (re-stamping). Each left a number missing among its own operations, so the
/// first missing one is the first that may have been given up.
pub(crate) fn note_given_up_seqs(conn: &Connection) -> Result<()> {
    let own: Option<String> = conn
        .query_row("SELECT device_id FROM device", [], |r| r.get(0))
        .optional()?;
    let Some(own) = own else {
        return Ok(());
    };
    let own = Uuid::parse_str(&own).map_err(StoreError::corrupt)?;
    let number: Option<i64> = conn
        .query_row(
            "SELECT device_no FROM devices WHERE device_id = ?1",
            [own.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .optional()?;
    let Some(number) = number else {
        return Ok(());
    };
    let mut seqs: Vec<u64> = conn
        .prepare("SELECT device_seq FROM ops WHERE device_no = ?1")?
        .query_map([number], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    seqs.sort_unstable();
    if let Some(missing) = first_missing_from_one(&seqs) {
        conn.execute("UPDATE sync_state SET first_given_up_seq = ?1", [missing])?;
    }
    Ok(())
}

/// The lowest number from 1 that sorted `seqs` skips before its last, if any.
fn first_missing_from_one(seqs: &[u64]) -> Option<u64> {
    let mut expected = 1;
    for &seq in seqs {
        if seq > expected {
            return Some(expected);
        }
        expected = expected.max(seq + 1);
    }
    None
}

#[cfg(test)]
mod given_up_tests {
    use super::first_missing_from_one;

    #[test]
    fn the_first_number_missing_before_the_last_is_found() {
        assert_eq!(first_missing_from_one(&[]), None);
        assert_eq!(first_missing_from_one(&[1, 2, 3]), None);
        assert_eq!(first_missing_from_one(&[2, 3]), Some(1));
        assert_eq!(first_missing_from_one(&[1, 2, 4, 6]), Some(3));
        assert_eq!(first_missing_from_one(&[1, 1, 2]), None);
    }
}
