//! The calls the sync client makes: what to push, what was acknowledged, how far the server feed
//! was read, applying pulled operations, and correcting a clock that runs ahead of the server.

use chrono::{DateTime, Utc};
use heeldiary_core::wire::PulledOp;
use heeldiary_core::{EntryState, Hlc, Op, MAX_CLOCK_AHEAD_MS};
use rusqlite::params;
use serde::Serialize;
use uuid::Uuid;

use crate::db::{
    holds_same_op, insert_first_state, insert_op, load_state, read_op, rebuild, save_state,
    OP_LOG_COLUMNS,
};
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
                    (SELECT count(*) FROM ops WHERE device_id = ?1 AND device_seq > s.acked_seq)
             FROM sync_state s",
            [self.device_id().to_string()],
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
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {OP_LOG_COLUMNS} FROM ops
             WHERE device_id = ?1 AND device_seq > (SELECT acked_seq FROM sync_state)
             ORDER BY device_seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![self.device_id().to_string(), limit as i64], read_op)?;
        rows.map(|op| op?).collect()
    }

    /// Notes that the server holds every own operation up to `device_seq`. Never moves back.
    pub fn mark_pushed(&mut self, device_seq: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE sync_state SET acked_seq = max(acked_seq, ?1)",
            [device_seq],
        )?;
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
                // Read the state before the operation joins the log: an entry whose state column
                // is empty is read through its only operation, and must not see this one yet.
                let state = load_state(tx, op.entry_id)?;
                if !insert_op(tx, op, Some((pulled.cursor, pulled.received_at)))? {
                    // The same key holding a different operation is never "had already": this
                    // diary wrote under a device id another copy of it wrote under too.
                    if !holds_same_op(tx, op)? {
                        return Err(StoreError::SequenceTaken {
                            device_id: op.device_id,
                            device_seq: op.device_seq,
                        });
                    }
                    summary.already_had += 1;
                    continue;
                }
                summary.applied += 1;
                // The server refuses stamps far ahead of its clock, so a refusal here only means
                // this device's clock is behind; the stamp still orders the merge.
                let _ = stamps.observe(op.hlc, now_ms.max(op.hlc.wall_ms));
                match state {
                    Some(mut state) => {
                        summary.conflicts += state.apply(op).conflicts.len();
                        save_state(tx, op.entry_id, &state)?;
                    }
                    None => {
                        insert_first_state(tx, op)?;
                    }
                }
            }
            tx.execute(
                "UPDATE sync_state SET pull_cursor = max(pull_cursor, ?1)",
                [next_cursor],
            )?;
            stamps.save(tx)?;
            Ok(summary)
        })
    }

    /// The epoch of the server feed this diary last saw, if it saw one.
    pub fn server_epoch(&self) -> Result<Option<Uuid>> {
        let text: Option<String> =
            self.conn
                .query_row("SELECT server_epoch FROM sync_state", [], |r| r.get(0))?;
        text.map(|t| Uuid::parse_str(&t).map_err(StoreError::corrupt))
            .transpose()
    }

    /// Notes the feed epoch a server answer carried. The first one seen is simply kept. A
    /// different one means the server was restored from a backup: every acknowledgement and
    /// the pull cursor are forgotten in the same transaction, so that the next push sends every
    /// own operation again (the server keeps one copy of each) and the next pull reads the feed
    /// from its start (applying an operation twice changes nothing). Returns whether the epoch
    /// was new.
    pub fn observe_epoch(&mut self, epoch: Uuid) -> Result<bool> {
        let text = epoch.to_string();
        self.write(|_, tx| {
            let known: Option<String> =
                tx.query_row("SELECT server_epoch FROM sync_state", [], |r| r.get(0))?;
            match known {
                Some(known) if known == text => Ok(false),
                None => {
                    tx.execute("UPDATE sync_state SET server_epoch = ?1", [&text])?;
                    Ok(false)
                }
                Some(_) => {
                    tx.execute(
                        "UPDATE sync_state SET server_epoch = ?1, acked_seq = 0, pull_cursor = 0",
                        [&text],
                    )?;
                    Ok(true)
                }
            }
        })
    }

    /// The device identity this diary is about to take, with the secret of its token: made on
    /// the first call and kept until [`adopt_identity`](Self::adopt_identity), so that asking
    /// the server again after a lost answer asks for the very same one.
    pub fn next_identity(&mut self) -> Result<(Uuid, String)> {
        let kept: (Option<String>, Option<String>) = self.conn.query_row(
            "SELECT pending_device_id, pending_device_secret FROM sync_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if let (Some(id), Some(secret)) = kept {
            return Ok((Uuid::parse_str(&id).map_err(StoreError::corrupt)?, secret));
        }
        let id = Uuid::now_v7();
        let secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        self.conn.execute(
            "UPDATE sync_state SET pending_device_id = ?1, pending_device_secret = ?2",
            params![id.to_string(), secret],
        )?;
        Ok((id, secret))
    }

    /// Takes the identity of [`next_identity`](Self::next_identity), with `token` when the
    /// server registered it for an enrolled diary. Every own operation the server has not
    /// acknowledged is issued again under the new id (sequence numbers from 1, the same stamps
    /// on the new node), so no operation of this diary can clash with those another copy wrote
    /// under the old id; acknowledged ones stay as they are, since the server holds exactly
    /// those. Returns how many operations moved.
    pub fn adopt_identity(&mut self, device_id: Uuid, token: Option<&str>) -> Result<usize> {
        let old = self.device_id();
        if old == device_id {
            return Ok(0);
        }
        let new_text = device_id.to_string();
        let moved = self.write(|_, tx| {
            let pending: Option<String> =
                tx.query_row("SELECT pending_device_id FROM sync_state", [], |r| r.get(0))?;
            if pending.as_deref() != Some(new_text.as_str()) {
                return Err(StoreError::corrupt(format!(
                    "device identity {device_id} was not prepared by this diary"
                )));
            }
            let moving: Vec<(i64, String, String)> = {
                let mut stmt = tx.prepare(
                    "SELECT local_seq, entry_id, hlc FROM ops
                     WHERE device_id = ?1 AND device_seq > (SELECT acked_seq FROM sync_state)
                     ORDER BY device_seq",
                )?;
                let rows =
                    stmt.query_map([old.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut touched = Vec::with_capacity(moving.len());
            for (seq, (local_seq, entry, hlc)) in (1u64..).zip(&moving) {
                let hlc: Hlc = hlc.parse().map_err(StoreError::corrupt)?;
                let hlc = Hlc {
                    node: device_id,
                    ..hlc
                };
                tx.execute(
                    "UPDATE ops SET device_id = ?1, device_seq = ?2, hlc = ?3,
                                    server_cursor = NULL, received_at = NULL
                     WHERE local_seq = ?4",
                    params![new_text, seq, hlc.to_string(), local_seq],
                )?;
                touched.push(Uuid::parse_str(entry).map_err(StoreError::corrupt)?);
            }
            touched.sort();
            touched.dedup();
            rebuild(tx, Some(&touched))?;
            tx.execute("UPDATE device SET device_id = ?1", [&new_text])?;
            tx.execute(
                "UPDATE sync_state SET acked_seq = 0, token = coalesce(?1, token),
                     enrolment_secret = pending_device_secret,
                     pending_device_id = NULL, pending_device_secret = NULL",
                [token],
            )?;
            Ok(moving.len())
        })?;
        self.stamps = crate::stamper::Stamper::new(device_id);
        self.reload_counters()?;
        Ok(moved)
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
    /// error, and recomputes the entries they touch. A re-stamped operation gets a new sequence
    /// number, so no sequence number ever names two different operations. Operations within the
    /// tolerance keep their stamps: the server may hold them already from a push whose answer
    /// was lost. Returns how many operations were re-stamped.
    pub fn correct_clock(&mut self, server_time_ms: u64) -> Result<usize> {
        let device_now_ms = (self.time)().timestamp_millis();
        let offset = server_time_ms as i64 - device_now_ms;
        let refused_after = Hlc {
            wall_ms: server_time_ms + MAX_CLOCK_AHEAD_MS,
            counter: u32::MAX,
            node: Uuid::max(),
        }
        .to_string();
        let device_id = self.device_id();
        let restamped = self.write(|stamps, tx| {
            tx.execute("UPDATE sync_state SET clock_offset_ms = ?1", [offset])?;
            let refused: Vec<(i64, Op)> = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {OP_LOG_COLUMNS}, local_seq FROM ops
                     WHERE device_id = ?1 AND device_seq > (SELECT acked_seq FROM sync_state)
                       AND hlc > ?2
                     ORDER BY local_seq"
                ))?;
                let rows = stmt.query_map(params![device_id.to_string(), &refused_after], |r| {
                    Ok((r.get::<_, i64>(5)?, read_op(r)?))
                })?;
                rows.map(|row| {
                    let (local_seq, op) = row?;
                    Ok((local_seq, op?))
                })
                .collect::<Result<_>>()?
            };
            let mut floor_of = tx.prepare(
                "SELECT max(hlc) FROM ops
                 WHERE local_seq < ?1 AND NOT (device_id = ?2 AND hlc > ?3
                       AND device_seq > (SELECT acked_seq FROM sync_state))",
            )?;
            // The new stamp is the old one moved back by how far the clock ran ahead (when the
            // operation was really written, as far as can be told), but never before anything
            // this diary held when it wrote the operation: an edit made after seeing another
            // device's still follows it, and one made before a later edit elsewhere still loses
            // to that, as it would have with a right clock.
            let mut last: Option<Hlc> = None;
            let mut touched = Vec::with_capacity(refused.len());
            for (local_seq, op) in &refused {
                // Never later than the server's now: the clock may have been set right since
                // (or this diary is a copy on a phone whose clock is right).
                let moved_back = Hlc {
                    wall_ms: op
                        .hlc
                        .wall_ms
                        .saturating_add_signed(offset.min(0))
                        .min(server_time_ms),
                    counter: 0,
                    node: device_id,
                };
                let held: Option<String> = floor_of.query_row(
                    params![local_seq, device_id.to_string(), &refused_after],
                    |r| r.get(0),
                )?;
                let mut hlc = moved_back;
                for before in held
                    .map(|t| t.parse::<Hlc>().map_err(StoreError::corrupt))
                    .transpose()?
                    .into_iter()
                    .chain(last)
                {
                    if hlc <= before {
                        hlc = Hlc {
                            wall_ms: before.wall_ms,
                            counter: before.counter.saturating_add(1),
                            node: device_id,
                        };
                    }
                }
                // A new sequence number, never the old one: a server whose clock stepped back,
                // or a second sync of this diary at the same moment, may hold the old operation
                // already, and a sequence number must never name two different operations.
                let device_seq = stamps.take_seq();
                tx.execute(
                    "UPDATE ops SET device_seq = ?1, hlc = ?2 WHERE local_seq = ?3",
                    params![device_seq, hlc.to_string(), local_seq],
                )?;
                last = Some(hlc);
                touched.push(op.entry_id);
            }
            drop(floor_of);
            touched.sort();
            touched.dedup();
            rebuild(tx, Some(&touched))?;
            // Own stamps from here on continue after every stamp the log holds now.
            let newest: Option<String> =
                tx.query_row("SELECT max(hlc) FROM ops", [], |r| r.get(0))?;
            let newest = match newest {
                Some(text) => text.parse().map_err(StoreError::corrupt)?,
                None => Hlc::zero(device_id),
            };
            stamps.restart_after(newest);
            stamps.save(tx)?;
            Ok(refused.len())
        })?;
        self.clock_offset_ms = offset;
        Ok(restamped)
    }

    /// The merged state of one entry with its per-field stamps, for sync diagnostics and tests.
    pub fn entry_state(&self, id: Uuid) -> Result<Option<EntryState>> {
        load_state(&self.conn, id)
    }

    /// Every operation in the local log, in arrival order (for tests and convergence checks).
    pub fn all_ops(&self) -> Result<Vec<Op>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {OP_LOG_COLUMNS} FROM ops ORDER BY local_seq"
        ))?;
        let rows = stmt.query_map([], read_op)?;
        rows.map(|op| op?).collect()
    }
}
