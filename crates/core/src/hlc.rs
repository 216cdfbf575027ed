//! Hybrid logical clock: wall-clock milliseconds, a counter for events within one millisecond,
//! and the device id as the final tie-break, so every stamp in the system is unique and ordered.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How far ahead of the server a device clock may run before its writes are refused: five minutes.
pub const MAX_CLOCK_AHEAD_MS: u64 = 5 * 60 * 1000;

const WALL_HEX: usize = 12;
const COUNTER_HEX: usize = 6;
const MAX_COUNTER: u32 = (1 << (4 * COUNTER_HEX)) - 1;

/// One hybrid-logical-clock stamp. Ordered by wall time, then counter, then device id.
///
/// Its text form, `wwwwwwwwwwww-cccccc-<device uuid, 32 hex>`, is fixed-width lowercase hex, so
/// sorting the text sorts the stamps; databases compare it as a plain string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// Events within the same millisecond.
    pub counter: u32,
    /// The device that made the stamp.
    pub node: Uuid,
}

impl Hlc {
    /// The lowest stamp of `node`: a clock that has seen nothing yet.
    pub fn zero(node: Uuid) -> Self {
        Self {
            wall_ms: 0,
            counter: 0,
            node,
        }
    }
}

/// Length of the text form: wall, counter and device in hex, two dashes between.
const TEXT_LEN: usize = WALL_HEX + 1 + COUNTER_HEX + 1 + 32;

impl Hlc {
    /// The text form written into `buffer`, or `None` for a wall time too large for its fixed
    /// width (which the formatter then writes wider). Stamps are written for every operation
    /// that crosses the wire or is stored as text, so this skips the formatting machinery.
    fn text_into(&self, buffer: &mut [u8; TEXT_LEN]) -> Option<()> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        if self.wall_ms >> (4 * WALL_HEX) != 0 || self.counter > MAX_COUNTER {
            return None;
        }
        let digits = |out: &mut [u8], mut value: u64| {
            for slot in out.iter_mut().rev() {
                *slot = HEX[(value & 0xf) as usize];
                value >>= 4;
            }
        };
        digits(&mut buffer[..WALL_HEX], self.wall_ms);
        buffer[WALL_HEX] = b'-';
        digits(
            &mut buffer[WALL_HEX + 1..WALL_HEX + 1 + COUNTER_HEX],
            u64::from(self.counter),
        );
        buffer[WALL_HEX + 1 + COUNTER_HEX] = b'-';
        self.node
            .simple()
            .encode_lower(&mut buffer[WALL_HEX + COUNTER_HEX + 2..]);
        Some(())
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buffer = [0u8; TEXT_LEN];
        if self.text_into(&mut buffer).is_some() {
            // Only ASCII hex digits and dashes were written.
            return f.write_str(std::str::from_utf8(&buffer).map_err(|_| fmt::Error)?);
        }
        write!(
            f,
            "{:0wall$x}-{:0counter$x}-{}",
            self.wall_ms,
            self.counter,
            self.node.simple(),
            wall = WALL_HEX,
            counter = COUNTER_HEX
        )
    }
}

impl FromStr for Hlc {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a clock stamp (wall-counter-device)");
        let mut parts = s.splitn(3, '-');
        let (wall, counter, node) = match (parts.next(), parts.next(), parts.next()) {
            (Some(w), Some(c), Some(n)) => (w, c, n),
            _ => return Err(bad()),
        };
        if wall.len() != WALL_HEX || counter.len() != COUNTER_HEX || node.len() != 32 {
            return Err(bad());
        }
        let hex = |t: &str| t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !hex(wall) || !hex(counter) || !hex(node) {
            return Err(bad());
        }
        Ok(Hlc {
            wall_ms: u64::from_str_radix(wall, 16).map_err(|_| bad())?,
            counter: u32::from_str_radix(counter, 16).map_err(|_| bad())?,
            node: Uuid::parse_str(node).map_err(|_| bad())?,
        })
    }
}

impl Serialize for Hlc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hlc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Reads the text form without copying it when the input lends it.
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Hlc;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a clock stamp (wall-counter-device)")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Hlc, E> {
                text.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Text)
    }
}

/// Why a clock refused to move.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// A remote stamp is further ahead of local time than [`MAX_CLOCK_AHEAD_MS`].
    #[error("a clock stamp is {ahead_ms} ms ahead of local time (at most {MAX_CLOCK_AHEAD_MS} ms allowed)")]
    TooFarAhead {
        /// How far ahead it was.
        ahead_ms: u64,
    },
    /// More than 16 million events in one millisecond.
    #[error("clock counter overflow within one millisecond")]
    CounterOverflow,
}

/// The clock of one device. `tick` stamps local events; `observe` folds in remote stamps so that
/// what happens next here is ordered after what was seen.
#[derive(Debug, Clone)]
pub struct HlcClock {
    last: Hlc,
}

impl HlcClock {
    /// A clock for `node` that resumes after `last` (the highest stamp already written).
    pub fn new(node: Uuid, last: Hlc) -> Self {
        Self {
            last: Hlc { node, ..last },
        }
    }

    /// The last stamp handed out or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// A new stamp for a local event at physical time `now_ms`, greater than every earlier one.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        let (wall_ms, counter) = if now_ms > self.last.wall_ms {
            (now_ms, 0)
        } else if self.last.counter < MAX_COUNTER {
            (self.last.wall_ms, self.last.counter + 1)
        } else {
            // The counter is exhausted: borrow the next millisecond rather than fail a write.
            (self.last.wall_ms + 1, 0)
        };
        self.last = Hlc {
            wall_ms,
            counter,
            node: self.last.node,
        };
        self.last
    }

    /// Folds in a remote stamp seen at physical time `now_ms`. A stamp too far in the future is
    /// refused, so one bad clock cannot drag every device forward.
    pub fn observe(&mut self, remote: Hlc, now_ms: u64) -> Result<(), ClockError> {
        if remote.wall_ms > now_ms + MAX_CLOCK_AHEAD_MS {
            return Err(ClockError::TooFarAhead {
                ahead_ms: remote.wall_ms - now_ms,
            });
        }
        if (remote.wall_ms, remote.counter) > (self.last.wall_ms, self.last.counter) {
            if remote.counter == MAX_COUNTER {
                return Err(ClockError::CounterOverflow);
            }
            self.last = Hlc {
                wall_ms: remote.wall_ms,
                counter: remote.counter,
                node: self.last.node,
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn the_fast_text_form_matches_the_formatted_one() {
        let stamps = [
            Hlc::zero(node(0)),
            Hlc {
                wall_ms: 1_767_225_600_123,
                counter: 0xab,
                node: node(0x0190_c3a4_0000_7000_8000_0000_0000_0002),
            },
            Hlc {
                wall_ms: (1 << 48) - 1,
                counter: MAX_COUNTER,
                node: node(u128::MAX),
            },
        ];
        for stamp in stamps {
            let text = stamp.to_string();
            let formatted = format!(
                "{:012x}-{:06x}-{}",
                stamp.wall_ms,
                stamp.counter,
                stamp.node.simple()
            );
            assert_eq!(text, formatted);
            assert_eq!(text.parse::<Hlc>(), Ok(stamp));
            let json = serde_json::to_string(&stamp).unwrap();
            assert_eq!(serde_json::from_str::<Hlc>(&json).unwrap(), stamp);
        }
        // Wider than the fixed width: written in full, and refused when read.
        let wide = Hlc {
            wall_ms: 1 << 48,
            counter: 0,
            node: node(1),
        };
        assert_eq!(
            wide.to_string(),
            format!("{:x}-000000-{}", 1u64 << 48, node(1).simple())
        );
        assert!(wide.to_string().parse::<Hlc>().is_err());
        assert!(serde_json::from_str::<Hlc>("12").is_err());
    }

    #[test]
    fn ticks_follow_wall_time_and_count_within_a_millisecond() {
        let mut clock = HlcClock::new(node(1), Hlc::zero(node(1)));
        let a = clock.tick(100);
        let b = clock.tick(100);
        let c = clock.tick(99); // wall clock stepped back: still monotonic
        let d = clock.tick(200);
        assert_eq!((a.wall_ms, a.counter), (100, 0));
        assert_eq!((b.wall_ms, b.counter), (100, 1));
        assert_eq!((c.wall_ms, c.counter), (100, 2));
        assert_eq!((d.wall_ms, d.counter), (200, 0));
        assert!(a < b && b < c && c < d);
    }

    #[test]
    fn observing_a_later_stamp_orders_later_events_after_it() {
        let mut clock = HlcClock::new(node(1), Hlc::zero(node(1)));
        clock.tick(100);
        let remote = Hlc {
            wall_ms: 150,
            counter: 7,
            node: node(2),
        };
        clock.observe(remote, 120).unwrap();
        let next = clock.tick(120);
        assert!(next > remote);
        assert_eq!((next.wall_ms, next.counter, next.node), (150, 8, node(1)));
    }

    #[test]
    fn stamps_far_in_the_future_are_refused() {
        let mut clock = HlcClock::new(node(1), Hlc::zero(node(1)));
        let remote = Hlc {
            wall_ms: 1_000 + MAX_CLOCK_AHEAD_MS + 1,
            counter: 0,
            node: node(2),
        };
        assert_eq!(
            clock.observe(remote, 1_000),
            Err(ClockError::TooFarAhead {
                ahead_ms: MAX_CLOCK_AHEAD_MS + 1
            })
        );
        assert_eq!(clock.last(), Hlc::zero(node(1)));
    }

    #[test]
    fn counter_exhaustion_borrows_the_next_millisecond() {
        let start = Hlc {
            wall_ms: 5,
            counter: MAX_COUNTER,
            node: node(1),
        };
        let mut clock = HlcClock::new(node(1), start);
        let next = clock.tick(5);
        assert_eq!((next.wall_ms, next.counter), (6, 0));
    }

    #[test]
    fn text_form_is_fixed_width_and_parses_back() {
        let h = Hlc {
            wall_ms: 1_700_000_000_123,
            counter: 42,
            node: node(0xabc),
        };
        let text = h.to_string();
        assert_eq!(text.len(), 12 + 1 + 6 + 1 + 32);
        assert_eq!(text.parse::<Hlc>().unwrap(), h);
        assert!("zz".parse::<Hlc>().is_err());
        assert!("00000000000a-00000g-00000000000000000000000000000abc"
            .parse::<Hlc>()
            .is_err());
    }

    proptest! {
        #[test]
        fn text_order_is_stamp_order(a in any::<(u64, u32, u128)>(), b in any::<(u64, u32, u128)>()) {
            let mk = |(w, c, n): (u64, u32, u128)| Hlc { wall_ms: w % (1 << 48), counter: c % (MAX_COUNTER + 1), node: Uuid::from_u128(n) };
            let (x, y) = (mk(a), mk(b));
            prop_assert_eq!(x.cmp(&y), x.to_string().cmp(&y.to_string()));
        }

        #[test]
        fn ticks_are_strictly_increasing(times in proptest::collection::vec(0u64..1_000, 1..200)) {
            let mut clock = HlcClock::new(node(3), Hlc::zero(node(3)));
            let mut prev = clock.last();
            for t in times {
                let next = clock.tick(t);
                prop_assert!(next > prev);
                prev = next;
            }
        }
    }
}
