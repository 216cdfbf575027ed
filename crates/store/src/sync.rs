//! The calls the sync client makes: what to push, what was acknowledged, how far the server feed
//! was read, applying pulled operations, and correcting a clock that runs ahead of the server.

use chrono::{DateTime, Utc};
use heeldiary_core::wire::PulledOp;
use heeldiary_core::{EntryState, Hlc, Op, MAX_CLOCK_AHEAD_MS};
use rusqlite::params;
use serde::Serialize;
use uuid::Uuid;

use crate::db::{device_no, insert_op, load_state, ops_of, read_op, uuid_from, SELECT_OPS};
use crate::error::{Result, StoreError};
use crate::Store;

/// The server this device syncs with, and its credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// Base URL of the server.
    pub server_url: String,
    /// The patient whose diary this is.
    pub patient_id: Uuid,
    /// Bearer token of this device.
    pub token: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment")
            .field("server_url", &self.server_url)
            .field("patient_id", &self.patient_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Where sync stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncState {
    /// Own operations acknowledged by the server, up to this device sequence.
    pub acked_seq: u64,
    /// Server feed read up to this cursor.
    pub pull_cursor: u64,
    /// Own operations not yet acknowledged.
    pub pending: u64,
    /// Correction applied to the device clock, in milliseconds.
    pub clock_offset_ms: i64,
    /// When a sync last finished.
    pub last_sync_at: Option<DateTime<Utc>>,
}

/// What applying a page of pulled operations did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RemoteApply {
    /// Operations new to this device.
    pub applied: usize,
    /// Operations it had already (its own, or a repeat delivery).
    pub already_had: usize,
    /// Fields where concurrent writes disagreed; the higher stamp won everywhere.
    pub conflicts: usize,
}

impl Store {
    /// Records the server and token this device syncs with.
    pub fn set_enrolment(&mut self, enrolment: &Enrolment) -> Result<()> {
        self.conn.execute(
            "UPDATE sync_state SET server_url = ?1, patient_id = ?2, token = ?3",
            params![
                enrolment.server_url,
                enrolment.patient_id.to_string(),
                enrolment.token
            ],
        )?;
        Ok(())
    }

    /// The secret part of this device's token, chosen on the device before it enrols and kept,
    /// so that asking again after a lost answer gets the same token. 64 lowercase hex characters.
    pub fn enrolment_secret(&mut self) -> Result<String> {
        let kept: Option<String> =
            self.conn
                .query_row("SELECT enrolment_secret FROM sync_state", [], |r| r.get(0))?;
        if let Some(secret) = kept {
            return Ok(secret);
        }
        // Two version-4 UUIDs: 244 random bits from the system's generator.
        let secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        self.conn
            .execute("UPDATE sync_state SET enrolment_secret = ?1", [&secret])?;
        Ok(secret)
    }

    /// The server and token, or [`StoreError::NotEnrolled`].
    pub fn enrolment(&self) -> Result<Enrolment> {
        let row: (Option<String>, Option<String>, Option<String>) = self.conn.query_row(
            "SELECT server_url, patient_id, token FROM sync_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        match row {
            (Some(server_url), Some(patient), Some(token)) => Ok(Enrolment {
                server_url,
                patient_id: Uuid::parse_str(&patient).map_err(StoreError::corrupt)?,
                token,
            }),
            _ => Err(StoreError::NotEnrolled),
        }
    }

    /// Where sync stands.
    pub fn sync_state(&self) -> Result<SyncState> {
        let (acked_seq, pull_cursor, clock_offset_ms, last, pending): (
            u64,
            u64,
            i64,
            Option<String>,
            u64,
        ) = self.conn.query_row(
            "SELECT s.acked_seq, s.pull_cursor, s.clock_offset_ms, s.last_sync_at,
                    (SELECT count(*) FROM outbox WHERE device_seq > s.acked_seq)
             FROM sync_state s",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
        Ok(SyncState {
            acked_seq,
            pull_cursor,
            pending,
            clock_offset_ms,
            last_sync_at: last
                .map(|t| DateTime::parse_from_rfc3339(&t).map(|t| t.to_utc()))
                .transpose()
                .map_err(StoreError::corrupt)?,
        })
    }

    /// Up to `limit` of this device's operations the server has not acknowledged, in sequence order.
    pub fn unpushed(&self, limit: usize) -> Result<Vec<Op>> {
        let own = device_no(&self.conn, self.device_id())?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT_OPS} JOIN outbox b ON o.entry_id = b.entry_id AND o.device_seq = b.device_seq
             WHERE o.device_no = ?1 AND b.device_seq > (SELECT acked_seq FROM sync_state)
             ORDER BY b.device_seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![own, limit as i64], read_op)?;
        rows.map(|row| Ok(row??.0)).collect()
    }

    /// Notes that the server holds every own operation up to `device_seq`, and takes them off
    /// the queue of the next push. Never moves back.
    pub fn mark_pushed(&mut self, device_seq: u64) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE sync_state SET acked_seq = max(acked_seq, ?1)",
            [device_seq],
        )?;
        tx.execute("DELETE FROM outbox WHERE device_seq <= ?1", [device_seq])?;
        let emptied: bool =
            tx.query_row("SELECT NOT EXISTS (SELECT 1 FROM outbox)", [], |r| r.get(0))?;
        tx.commit()?;
        if emptied {
            // The pragma frees one page per step: step it to the end.
            let mut vacuum = self.conn.prepare("PRAGMA incremental_vacuum")?;
            let mut steps = vacuum.query([])?;
            while steps.next()?.is_some() {}
        }
        Ok(())
    }

    /// Applies a page of pulled operations through the same merge as local edits and moves the
    /// pull cursor to `next_cursor`, all in one transaction: a crash leaves either the whole page
    /// applied with the cursor after it, or nothing.
    pub fn apply_pulled(&mut self, ops: &[PulledOp], next_cursor: u64) -> Result<RemoteApply> {
        let now_ms = self.now_ms();
        self.write(|stamps, tx| {
            let mut summary = RemoteApply::default();
            for pulled in ops {
                let op = &pulled.op;
                // A repeat (own operations come back in the feed) costs one key lookup.
                if !insert_op(tx, op, Some(pulled.received_at))? {
                    summary.already_had += 1;
                    continue;
                }
                summary.applied += 1;
                // The server refuses stamps far ahead of its clock, so a refusal here only means
                // this device's clock is behind; the stamp still orders the merge.
                let _ = stamps.observe(op.hlc, now_ms.max(op.hlc.wall_ms));
                if op.device_id == stamps.device_id() {
                    stamps.observe_own_seq(op.device_seq);
                }
                // The entry as it was before this operation, to count the fields it disputes.
                let mut before: Option<EntryState> = None;
                for (other, _) in ops_of(tx, op.entry_id)? {
                    if (other.device_id, other.device_seq) != (op.device_id, op.device_seq) {
                        before.get_or_insert_with(EntryState::default).apply(&other);
                    }
                }
                if let Some(mut state) = before {
                    summary.conflicts += state.apply(op).conflicts.len();
                }
            }
            tx.execute(
                "UPDATE sync_state SET pull_cursor = max(pull_cursor, ?1)",
                [next_cursor],
            )?;
            Ok(summary)
        })
    }

    /// Records that a sync finished now.
    pub fn mark_synced(&mut self) -> Result<()> {
        self.conn.execute(
            "UPDATE sync_state SET last_sync_at = ?1",
            [Utc::now().to_rfc3339()],
        )?;
        Ok(())
    }

    /// Learns the device clock's offset from a server time seen in an answer: none while the
    /// device clock is within [`MAX_CLOCK_AHEAD_MS`] of the server's, else the difference. So a
    /// correction made while the device clock ran ahead is undone once the clock is set right.
    pub fn learn_server_time(&mut self, server_time_ms: u64) -> Result<()> {
        let difference = server_time_ms as i64 - (self.time)().timestamp_millis();
        let offset = if difference.unsigned_abs() <= MAX_CLOCK_AHEAD_MS {
            0
        } else {
            difference
        };
        if offset != self.clock_offset_ms {
            self.conn
                .execute("UPDATE sync_state SET clock_offset_ms = ?1", [offset])?;
            self.clock_offset_ms = offset;
        }
        Ok(())
    }

    /// The server said this device's clock runs ahead of its own (`server_time_ms`). Learns the
    /// offset, then re-stamps the unacknowledged operations the server would refuse (stamped more
    /// than [`MAX_CLOCK_AHEAD_MS`] past its time) so they stop winning conflicts by a clock
    /// error, and recomputes the entries they touch. Operations within the tolerance keep their
    /// stamps: the server may hold them already from a push whose answer was lost, and a copy
    /// must never differ from the original. Returns how many operations were re-stamped.
    pub fn correct_clock(&mut self, server_time_ms: u64) -> Result<usize> {
        let offset = server_time_ms as i64 - (self.time)().timestamp_millis();
        let refused_after_ms = server_time_ms + MAX_CLOCK_AHEAD_MS;
        let now_ms = server_time_ms;
        let device_id = self.device_id();
        let restamped = self.write(|stamps, tx| {
            tx.execute("UPDATE sync_state SET clock_offset_ms = ?1", [offset])?;
            let own = device_no(tx, device_id)?;
            // A stamp the server would refuse is past its time by more than the tolerance, at
            // any counter and device.
            let refused: Vec<(u64, Uuid)> = {
                let mut stmt = tx.prepare(
                    "SELECT b.device_seq, b.entry_id FROM outbox b JOIN ops o
                       ON o.entry_id = b.entry_id AND o.device_no = ?1 AND o.device_seq = b.device_seq
                     WHERE b.device_seq > (SELECT acked_seq FROM sync_state) AND o.hlc_ms > ?2
                     ORDER BY b.device_seq",
                )?;
                let rows = stmt.query_map(params![own, refused_after_ms], |r| {
                    Ok((r.get(0)?, r.get_ref(1)?.as_blob()?.to_vec()))
                })?;
                rows.map(|row| {
                    let (seq, entry) = row?;
                    Ok((seq, uuid_from(&entry)?))
                })
                .collect::<Result<_>>()?
            };
            // Restart the clock after every stamp that stays, other devices' included.
            let mut settled = Hlc::zero(device_id);
            {
                let mut stmt = tx.prepare(&format!(
                    "{SELECT_OPS} WHERE NOT (o.device_no = ?1 AND o.hlc_ms > ?2
                       AND o.device_seq > (SELECT acked_seq FROM sync_state))"
                ))?;
                for row in stmt.query_map(params![own, refused_after_ms], read_op)? {
                    settled = settled.max(row??.0.hlc);
                }
            }
            stamps.restart_after(settled);
            for (device_seq, entry) in &refused {
                let hlc = stamps.tick(now_ms);
                tx.execute(
                    "UPDATE ops SET hlc_ms = ?1, hlc_counter = ?2, hlc_node = NULL
                     WHERE entry_id = ?3 AND device_no = ?4 AND device_seq = ?5",
                    params![hlc.wall_ms, hlc.counter, entry.as_bytes().as_slice(), own, device_seq],
                )?;
            }
            Ok(refused.len())
        })?;
        self.clock_offset_ms = offset;
        Ok(restamped)
    }

    /// The merged state of one entry with its per-field stamps, for sync diagnostics and tests.
    pub fn entry_state(&self, id: Uuid) -> Result<Option<EntryState>> {
        load_state(&self.conn, id)
    }

    /// Every operation in the local log, in stamp order (for tests and convergence checks).
    pub fn all_ops(&self) -> Result<Vec<Op>> {
        let mut stmt = self.conn.prepare(SELECT_OPS)?;
        let rows = stmt.query_map([], read_op)?;
        let mut ops = rows.map(|row| Ok(row??.0)).collect::<Result<Vec<_>>>()?;
        ops.sort_by_key(|op| op.hlc);
        Ok(ops)
    }
}
