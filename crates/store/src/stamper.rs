//! This device's clock stamps and sequence numbers, and where they are kept in the file.
//!
//! The file is the truth: every write starts by catching up with it (another process or handle
//! on the same diary may have written since), and moves of the clock the log does not show by
//! itself (stamps seen from other devices, a corrected clock) are saved back.

use heeldiary_core::{Hlc, HlcClock, Op, Patch};
use rusqlite::Connection;
use uuid::Uuid;

use crate::error::{Result, StoreError};

/// Hands out this device's clock stamps and sequence numbers. Kept apart from the connection so a
/// transaction can borrow one while the other moves on.
pub(crate) struct Stamper {
    device_id: Uuid,
    clock: HlcClock,
    next_seq: u64,
}

impl Stamper {
    /// A stamper that has seen nothing yet; [`catch_up`](Self::catch_up) before stamping.
    pub(crate) fn new(device_id: Uuid) -> Self {
        Self {
            device_id,
            clock: HlcClock::new(device_id, Hlc::zero(device_id)),
            next_seq: 1,
        }
    }

    /// The device whose operations this stamps.
    pub(crate) fn device_id(&self) -> Uuid {
        self.device_id
    }

    /// A new operation of this device on `entry_id`: the next stamp and sequence number.
    pub(crate) fn stamp(&mut self, entry_id: Uuid, patch: Patch, now_ms: u64) -> Op {
        let hlc = self.clock.tick(now_ms);
        let device_seq = self.next_seq;
        self.next_seq += 1;
        Op {
            entry_id,
            device_id: self.device_id,
            device_seq,
            hlc,
            patch,
        }
    }

    /// The next sequence number, for an operation issued again with a stamp of its own.
    pub(crate) fn take_seq(&mut self) -> u64 {
        let device_seq = self.next_seq;
        self.next_seq += 1;
        device_seq
    }

    /// Moves the clock past a stamp seen from another device, so that later own stamps order
    /// after it. Refused (and ignored by the clock) when `remote` is far ahead of `now_ms`.
    pub(crate) fn observe(
        &mut self,
        remote: Hlc,
        now_ms: u64,
    ) -> std::result::Result<(), heeldiary_core::ClockError> {
        self.clock.observe(remote, now_ms)
    }

    /// The last own sequence number given out.
    pub(crate) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Moves the sequence past an own operation the log learnt from elsewhere (pulled back from
    /// the server after this file was restored from an older copy).
    pub(crate) fn observe_own_seq(&mut self, device_seq: u64) {
        self.next_seq = self.next_seq.max(device_seq + 1);
    }

    /// Restarts the clock right after `settled`, the last stamp that stays (a corrected clock).
    pub(crate) fn restart_after(&mut self, settled: Hlc) {
        self.clock = HlcClock::new(self.device_id, settled);
    }

    /// Moves past what the file holds: another writer (a second process on the same diary, or
    /// a second handle in one app) may have written since this one last looked. Every write
    /// saves the newest stamp and own sequence beside the device before it commits.
    pub(crate) fn catch_up(&mut self, conn: &Connection) -> Result<()> {
        let (observed, newest_seq): (Option<String>, u64) = conn
            .prepare_cached("SELECT last_hlc, last_seq FROM device")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        // A correction made by another handle may have moved the clock back: the file is the
        // truth.
        let last = match observed {
            Some(text) => text.parse().map_err(StoreError::corrupt)?,
            None => Hlc::zero(self.device_id),
        };
        self.clock = HlcClock::new(self.device_id, last);
        self.next_seq = newest_seq + 1;
        Ok(())
    }

    /// Records the clock's last stamp and the last own sequence number for the next writer.
    pub(crate) fn save(&self, conn: &Connection) -> Result<()> {
        conn.prepare_cached("UPDATE device SET last_hlc = ?1, last_seq = ?2")?
            .execute(rusqlite::params![
                self.clock.last().to_string(),
                self.next_seq - 1
            ])?;
        Ok(())
    }
}
