//! The calls the sync client makes: what to push, what was acknowledged, how far the server feed
//! was read, applying pulled operations, and correcting a clock that runs ahead of the server.

use chrono::{DateTime, FixedOffset, Utc};
use heeldiary_core::wire::PulledOp;
use heeldiary_core::{EntryState, Hlc, Op, MAX_CLOCK_AHEAD_MS};
use rusqlite::params;
use serde::Serialize;
use uuid::Uuid;

use crate::db::{
    insert_first_state, insert_op, load_state, read_op, rebuild, save_state, OP_LOG_COLUMNS,
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

/// The patient's answer to research use of the diary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResearchConsent {
    /// Whether de-identified diary data may be used for research (off until the patient says on).
    pub consent: bool,
    /// When the patient last answered, if ever.
    pub changed_at: Option<DateTime<FixedOffset>>,
    /// The answer has not reached the server yet.
    pub pending: bool,
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

    /// Records the patient's answer to research use, stamped with the corrected device clock;
    /// the next sync carries it to the server.
    pub fn set_research_consent(&mut self, consent: bool) -> Result<ResearchConsent> {
        let at = self.fresh_now()?;
        self.conn.execute(
            "UPDATE sync_state SET research_consent = ?1, research_consent_at = ?2,
                                   research_consent_sent = 0",
            params![
                consent,
                at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
            ],
        )?;
        self.research_consent()
    }

    /// The patient's answer to research use.
    pub fn research_consent(&self) -> Result<ResearchConsent> {
        let (consent, at, sent): (bool, Option<String>, bool) = self.conn.query_row(
            "SELECT research_consent, research_consent_at, research_consent_sent FROM sync_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(ResearchConsent {
            consent,
            changed_at: at
                .map(|t| DateTime::parse_from_rfc3339(&t))
                .transpose()
                .map_err(StoreError::corrupt)?,
            pending: !sent,
        })
    }

    /// Records that the server has the answer given at `changed_at`. A newer answer given
    /// meanwhile stays pending.
    pub fn mark_research_consent_sent(&mut self, changed_at: &DateTime<FixedOffset>) -> Result<()> {
        self.conn.execute(
            "UPDATE sync_state SET research_consent_sent = 1 WHERE research_consent_at = ?1",
            [changed_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)],
        )?;
        Ok(())
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
        let refused_after = Hlc {
            wall_ms: server_time_ms + MAX_CLOCK_AHEAD_MS,
            counter: u32::MAX,
            node: Uuid::max(),
        }
        .to_string();
        let now_ms = server_time_ms;
        let device_id = self.device_id();
        let restamped = self.write(|stamps, tx| {
            tx.execute("UPDATE sync_state SET clock_offset_ms = ?1", [offset])?;
            // Restart the clock after every stamp that stays, other devices' included.
            let settled: Option<String> = tx.query_row(
                "SELECT max(hlc) FROM ops
                 WHERE NOT (device_id = ?1 AND hlc > ?2
                            AND device_seq > (SELECT acked_seq FROM sync_state))",
                params![device_id.to_string(), &refused_after],
                |r| r.get(0),
            )?;
            let settled = match settled {
                Some(text) => text.parse().map_err(StoreError::corrupt)?,
                None => Hlc::zero(device_id),
            };
            stamps.restart_after(settled);
            let refused: Vec<(u64, String)> = {
                let mut stmt = tx.prepare(
                    "SELECT device_seq, entry_id FROM ops
                     WHERE device_id = ?1 AND device_seq > (SELECT acked_seq FROM sync_state)
                       AND hlc > ?2
                     ORDER BY device_seq",
                )?;
                let rows = stmt.query_map(params![device_id.to_string(), refused_after], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut touched = Vec::new();
            for (device_seq, entry) in &refused {
                let hlc = stamps.tick(now_ms);
                tx.execute(
                    "UPDATE ops SET hlc = ?1 WHERE device_id = ?2 AND device_seq = ?3",
                    params![hlc.to_string(), device_id.to_string(), device_seq],
                )?;
                touched.push(Uuid::parse_str(entry).map_err(StoreError::corrupt)?);
            }
            touched.sort();
            touched.dedup();
            rebuild(tx, Some(&touched))?;
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
