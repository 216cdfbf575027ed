//! The calls the sync client makes: what to push, what was acknowledged, how far the server feed
//! was read, applying pulled operations, and correcting a clock that runs ahead of the server.

use chrono::{DateTime, FixedOffset, Utc};
use heeldiary_core::wire::PulledOp;
use heeldiary_core::{EntryState, Hlc, Op, MAX_CLOCK_AHEAD_MS};
use rusqlite::params;
use serde::Serialize;
use uuid::Uuid;

use crate::db::{
    device_no, entry_has_other_ops, holds_same_op, insert_op, load_state, ops_of,
    own_seq_queued_elsewhere, read_op, uuid_from, DeviceNumbers, SELECT_OPS,
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
        let row: (Option<String>, Option<String>, Option<String>) = self
            .conn
            .prepare_cached("SELECT server_url, patient_id, token FROM sync_state")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
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
        ) = self
            .conn
            .prepare_cached(
                "SELECT s.acked_seq, s.pull_cursor, s.clock_offset_ms, s.last_sync_at,
                        (SELECT count(*) FROM outbox WHERE device_seq > s.acked_seq)
                 FROM sync_state s",
            )?
            .query_row([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
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

    /// The own sequence number up to which this diary holds its own operations exactly as the
    /// server does, so that a pull may leave them out: the acknowledged one, but below any
    /// number given up since the server may hold an operation under it that this diary no
    /// longer has. An acknowledgement means the server stored that very operation under that
    /// number (a different one under it is refused as taken), acknowledged operations never
    /// change here, and a new identity or a new feed epoch starts acknowledgements over.
    pub fn held_own_through(&self) -> Result<u64> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT min(acked_seq, coalesce(first_given_up_seq - 1, acked_seq))
                 FROM sync_state",
            )?
            .query_row([], |r| r.get(0))?)
    }

    /// Up to `limit` of this device's operations the server has not acknowledged, in sequence order.
    pub fn unpushed(&self, limit: usize) -> Result<Vec<Op>> {
        self.unpushed_after(0, limit)
    }

    /// Like [`unpushed`](Self::unpushed), but only operations after sequence `after`: the batch
    /// after one that is on its way to the server and not acknowledged yet.
    pub fn unpushed_after(&self, after: u64, limit: usize) -> Result<Vec<Op>> {
        let own = device_no(&self.conn, self.device_id())?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT_OPS} JOIN outbox b ON o.entry_id = b.entry_id AND o.device_seq = b.device_seq
             WHERE o.device_no = ?1 AND b.device_seq > max(?3, (SELECT acked_seq FROM sync_state))
             ORDER BY b.device_seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![own, limit as i64, after], read_op)?;
        rows.map(|row| Ok(row??.0)).collect()
    }

    /// Notes that the server holds every own operation up to `device_seq`, and takes them off
    /// the queue of the next push. Never moves back.
    pub fn mark_pushed(&mut self, device_seq: u64) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.prepare_cached("UPDATE sync_state SET acked_seq = max(acked_seq, ?1)")?
            .execute([device_seq])?;
        tx.prepare_cached("DELETE FROM outbox WHERE device_seq <= ?1")?
            .execute([device_seq])?;
        let emptied: bool = tx
            .prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM outbox)")?
            .query_row([], |r| r.get(0))?;
        tx.commit()?;
        if emptied {
            // The pragma frees one page per step: step it to the end.
            let mut vacuum = self.conn.prepare_cached("PRAGMA incremental_vacuum")?;
            let mut steps = vacuum.query([])?;
            while steps.next()?.is_some() {}
        }
        Ok(())
    }

    /// Applies a page of pulled operations through the same merge as local edits and moves the
    /// pull cursor to `next_cursor`, all in one transaction: a crash leaves either the whole page
    /// applied with the cursor after it, or nothing.
    pub fn apply_pulled(&mut self, ops: &[PulledOp], next_cursor: u64) -> Result<RemoteApply> {
        self.apply_page(ops, next_cursor, false)
    }

    /// [`apply_pulled`](Self::apply_pulled) for the page that ends a sync run: the same
    /// transaction also records that the sync finished now ([`SyncState::last_sync_at`]), rather
    /// than a commit of its own after it: a daily sync waits for the disk once less.
    pub fn apply_last_pulled(&mut self, ops: &[PulledOp], next_cursor: u64) -> Result<RemoteApply> {
        self.apply_page(ops, next_cursor, true)
    }

    fn apply_page(
        &mut self,
        ops: &[PulledOp],
        next_cursor: u64,
        finishes_sync: bool,
    ) -> Result<RemoteApply> {
        let now_ms = self.now_ms();
        self.write(|stamps, tx| {
            let mut summary = RemoteApply::default();
            let mut numbers = DeviceNumbers::default();
            for pulled in ops {
                let op = &pulled.op;
                let own = op.device_id == stamps.device_id();
                // A repeat (own operations come back in the feed) costs one key lookup. The same
                // key holding a different operation, or an own sequence number queued for another
                // entry, is never "had already": this diary wrote under a device id another copy
                // of it wrote under too.
                let taken = || StoreError::SequenceTaken {
                    device_id: op.device_id,
                    device_seq: op.device_seq,
                };
                if own && own_seq_queued_elsewhere(tx, op.device_seq, op.entry_id)? {
                    return Err(taken());
                }
                let seen_at_seq = stamps.last_seq();
                if !insert_op(
                    tx,
                    &mut numbers,
                    op,
                    Some((pulled.received_at, seen_at_seq)),
                )? {
                    if !holds_same_op(tx, &mut numbers, op)? {
                        return Err(taken());
                    }
                    summary.already_had += 1;
                    continue;
                }
                summary.applied += 1;
                // The server refuses stamps far ahead of its clock, so a refusal here only means
                // this device's clock is behind; the stamp still orders the merge.
                let _ = stamps.observe(op.hlc, now_ms.max(op.hlc.wall_ms));
                if own {
                    stamps.observe_own_seq(op.device_seq);
                }
                // An operation alone on its entry disputes nothing; otherwise the entry as it was
                // before this operation tells which fields it disputes.
                if !entry_has_other_ops(tx, &mut numbers, op)? {
                    continue;
                }
                let mut before = EntryState::default();
                for (other, _) in ops_of(tx, op.entry_id)? {
                    if (other.device_id, other.device_seq) != (op.device_id, op.device_seq) {
                        before.apply(&other);
                    }
                }
                summary.conflicts += before.apply(op).conflicts.len();
            }
            let synced_at = finishes_sync.then(|| Utc::now().to_rfc3339());
            tx.prepare_cached(
                "UPDATE sync_state SET pull_cursor = max(pull_cursor, ?1),
                                       last_sync_at = coalesce(?2, last_sync_at)",
            )?
            .execute(params![next_cursor, synced_at])?;
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
        let (consent, at, sent): (bool, Option<String>, bool) = self
            .conn
            .prepare_cached(
                "SELECT research_consent, research_consent_at, research_consent_sent
                 FROM sync_state",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
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
        // Every answer carries the epoch and it hardly ever changes: a read says so without a
        // write transaction.
        let known: Option<String> = self
            .conn
            .prepare_cached("SELECT server_epoch FROM sync_state")?
            .query_row([], |r| r.get(0))?;
        if known.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        let device_id = self.device_id();
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
                    // Every own operation goes back on the push queue.
                    tx.execute(
                        "INSERT INTO outbox (device_seq, entry_id)
                         SELECT device_seq, entry_id FROM ops WHERE device_no = ?1
                         ON CONFLICT (device_seq) DO NOTHING",
                        [device_no(tx, device_id)?],
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
        let moved = self.write(|stamps, tx| {
            let pending: Option<String> =
                tx.query_row("SELECT pending_device_id FROM sync_state", [], |r| r.get(0))?;
            if pending.as_deref() != Some(new_text.as_str()) {
                return Err(StoreError::corrupt(format!(
                    "device identity {device_id} was not prepared by this diary"
                )));
            }
            let own = device_no(tx, old)?;
            let new = device_no(tx, device_id)?;
            let moving: Vec<(u64, Uuid)> = {
                let mut stmt = tx.prepare(
                    "SELECT device_seq, entry_id FROM outbox
                     WHERE device_seq > (SELECT acked_seq FROM sync_state) ORDER BY device_seq",
                )?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, Vec<u8>>(1)?)))?;
                rows.map(|row| {
                    let (seq, entry) = row?;
                    Ok((seq, uuid_from(&entry)?))
                })
                .collect::<Result<_>>()?
            };
            tx.execute("DELETE FROM outbox", [])?;
            for (seq, (old_seq, entry)) in (1u64..).zip(&moving) {
                // The same stamps on the new node: the writer's own, so no node is kept apart.
                tx.execute(
                    "UPDATE ops SET device_no = ?1, device_seq = ?2, hlc_node = NULL,
                                    received_at = NULL, seen_at_seq = NULL
                     WHERE entry_id = ?3 AND device_no = ?4 AND device_seq = ?5",
                    params![new, seq, entry.as_bytes().as_slice(), own, old_seq],
                )?;
                tx.execute(
                    "INSERT INTO outbox (device_seq, entry_id) VALUES (?1, ?2)",
                    params![seq, entry.as_bytes().as_slice()],
                )?;
            }
            tx.execute("UPDATE device SET last_seq = ?1", [moving.len() as u64])?;
            tx.execute("UPDATE device SET device_id = ?1", [&new_text])?;
            tx.execute(
                "UPDATE sync_state SET acked_seq = 0, first_given_up_seq = NULL,
                     token = coalesce(?1, token), enrolment_secret = pending_device_secret,
                     pending_device_id = NULL, pending_device_secret = NULL",
                [token],
            )?;
            // The write saves the stamper: it must be the new identity's, caught up with the
            // sequence numbers just given out.
            *stamps = crate::stamper::Stamper::new(device_id);
            stamps.catch_up(tx)?;
            Ok(moving.len())
        })?;
        self.stamps = crate::stamper::Stamper::new(device_id);
        self.reload_counters()?;
        Ok(moved)
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
        let refused_after_ms = server_time_ms + MAX_CLOCK_AHEAD_MS;
        let device_id = self.device_id();
        let restamped = self.write(|stamps, tx| {
            tx.execute("UPDATE sync_state SET clock_offset_ms = ?1", [offset])?;
            let own = device_no(tx, device_id)?;
            let acked: u64 = tx.query_row("SELECT acked_seq FROM sync_state", [], |r| r.get(0))?;
            // A stamp the server would refuse is past its time by more than the tolerance, at
            // any counter and device. Every other operation stays, with when this diary held it:
            // an own one from its sequence number, a pulled one from the own sequence number
            // reached when it arrived.
            let mut refused: Vec<Op> = Vec::new();
            let mut held: Vec<(u64, Hlc)> = Vec::new();
            {
                let mut stmt = tx.prepare(SELECT_OPS)?;
                let rows =
                    stmt.query_map([], |r| Ok((read_op(r)?, r.get::<_, Option<u64>>(8)?)))?;
                for row in rows {
                    let (op, seen_at_seq) = row?;
                    let (op, _) = op?;
                    let is_own = op.device_id == device_id;
                    if is_own && op.device_seq > acked && op.hlc.wall_ms > refused_after_ms {
                        refused.push(op);
                    } else if is_own {
                        held.push((op.device_seq, op.hlc));
                    } else {
                        held.push((seen_at_seq.unwrap_or(0), op.hlc));
                    }
                }
            }
            refused.sort_by_key(|op| op.device_seq);
            if let Some(first) = refused.first() {
                // The old numbers are given up; the server may hold operations under them.
                tx.execute(
                    "UPDATE sync_state
                     SET first_given_up_seq = min(coalesce(first_given_up_seq, ?1), ?1)",
                    [first.device_seq],
                )?;
            }
            held.sort_by_key(|(held_at, _)| *held_at);
            let mut newest: Option<Hlc> = None;
            let floors: Vec<(u64, Hlc)> = held
                .iter()
                .map(|(held_at, hlc)| {
                    newest = newest.max(Some(*hlc));
                    (*held_at, newest.unwrap_or(*hlc))
                })
                .collect();
            // The newest stamp this diary held when it wrote own operation `device_seq`.
            let floor_of = |device_seq: u64| {
                let before = floors.partition_point(|(held_at, _)| *held_at < device_seq);
                before.checked_sub(1).map(|i| floors[i].1)
            };
            // The new stamp is the old one moved back by how far the clock ran ahead (when the
            // operation was really written, as far as can be told), but never before anything
            // this diary held when it wrote the operation: an edit made after seeing another
            // device's still follows it, and one made before a later edit elsewhere still loses
            // to that, as it would have with a right clock.
            let mut last: Option<Hlc> = None;
            for op in &refused {
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
                let mut hlc = moved_back;
                for before in floor_of(op.device_seq).into_iter().chain(last) {
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
                    "UPDATE ops SET device_seq = ?1, hlc_ms = ?2, hlc_counter = ?3, hlc_node = NULL
                     WHERE entry_id = ?4 AND device_no = ?5 AND device_seq = ?6",
                    params![
                        device_seq,
                        hlc.wall_ms,
                        hlc.counter,
                        op.entry_id.as_bytes().as_slice(),
                        own,
                        op.device_seq
                    ],
                )?;
                tx.execute(
                    "UPDATE outbox SET device_seq = ?1 WHERE device_seq = ?2",
                    params![device_seq, op.device_seq],
                )?;
                last = Some(hlc);
            }
            // Own stamps from here on continue after every stamp the log holds now.
            stamps.restart_after(newest.max(last).unwrap_or(Hlc::zero(device_id)));
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
