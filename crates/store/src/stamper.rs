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

    /// Restarts the clock right after `settled`, the last stamp that stays (a corrected clock).
    pub(crate) fn restart_after(&mut self, settled: Hlc) {
        self.clock = HlcClock::new(self.device_id, settled);
    }

    /// Moves past what the file holds: another writer (a second process on the same diary, or
    /// a second handle in one app) may have written since this one last looked. Own stamps grow
    /// with the sequence, so the newest own operation carries the highest; stamps learnt from
    /// other devices are kept in `device.last_hlc`.
    pub(crate) fn catch_up(&mut self, conn: &Connection) -> Result<()> {
        let (observed, newest_seq, newest_hlc): (Option<String>, Option<u64>, Option<String>) =
            conn.prepare_cached(
                "SELECT d.last_hlc, o.device_seq, o.hlc FROM device d LEFT JOIN
                   (SELECT device_seq, hlc FROM ops WHERE device_id = ?1
                    ORDER BY device_seq DESC LIMIT 1) o",
            )?
            .query_row([self.device_id.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        // Every move of the clock is in the file by the time a write commits (own stamps in the
        // log, others in last_hlc), so the file is the truth; a correction made by another handle
        // may have moved it back.
        let mut last = Hlc::zero(self.device_id);
        for text in [observed, newest_hlc].into_iter().flatten() {
            last = last.max(text.parse().map_err(StoreError::corrupt)?);
        }
        self.clock = HlcClock::new(self.device_id, last);
        self.next_seq = newest_seq.unwrap_or(0) + 1;
        Ok(())
    }

    /// Records the clock's last stamp for the next writer, after it moved for a reason the log
    /// does not show by itself (stamps seen from other devices, a corrected clock).
    pub(crate) fn save(&self, conn: &Connection) -> Result<()> {
        conn.prepare_cached("UPDATE device SET last_hlc = ?1")?
            .execute([self.clock.last().to_string()])?;
        Ok(())
    }
}
