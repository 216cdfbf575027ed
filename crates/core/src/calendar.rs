//! Days and instants read from the one spelling every diary and server writes (`2026-11-02`,
//! `2026-11-02T07:30:00.000+01:00`) without chrono's general parser, which bulk readers (an
//! export, a first sync, a provider's list) would otherwise run millions of times at several
//! times the cost. Anything else goes to chrono, so what is accepted, and every error, stays
//! chrono's.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, ParseResult};

/// A day written `YYYY-MM-DD`; any other spelling is read by chrono (`NaiveDate::from_str`).
pub fn parse_day(text: &str) -> ParseResult<NaiveDate> {
    match plain_day(text.as_bytes()) {
        Some(day) => Ok(day),
        None => text.parse(),
    }
}

/// An RFC 3339 instant as `DateTime::<FixedOffset>::from_str` reads it (what serde reads an
/// entry's `recorded_at` with).
pub fn parse_instant(text: &str) -> ParseResult<DateTime<FixedOffset>> {
    match plain_instant(text.as_bytes()) {
        Some(instant) => Ok(instant),
        None => text.parse(),
    }
}

/// An RFC 3339 instant as `DateTime::parse_from_rfc3339` reads it (what servers store times
/// with).
pub fn parse_rfc3339(text: &str) -> ParseResult<DateTime<FixedOffset>> {
    match plain_instant(text.as_bytes()) {
        Some(instant) => Ok(instant),
        None => DateTime::parse_from_rfc3339(text),
    }
}

/// The number written by `bytes`, all ASCII digits.
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

/// A day written exactly `YYYY-MM-DD`, or `None` for chrono to read.
pub(crate) fn plain_day(bytes: &[u8]) -> Option<NaiveDate> {
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    NaiveDate::from_ymd_opt(
        digits(&bytes[..4])? as i32,
        digits(&bytes[5..7])?,
        digits(&bytes[8..10])?,
    )
}

/// `YYYY-MM-DDTHH:MM:SS`, then an optional fraction of one to nine digits, then `Z` or
/// `±HH:MM`. Leap seconds, longer fractions and every other spelling are left to chrono: the
/// shape taken here is one every chrono parser reads the same way.
fn plain_instant(bytes: &[u8]) -> Option<DateTime<FixedOffset>> {
    if bytes.len() < 20 || bytes[10] != b'T' || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let day = plain_day(&bytes[..10])?;
    let (hour, minute, second) = (
        digits(&bytes[11..13])?,
        digits(&bytes[14..16])?,
        digits(&bytes[17..19])?,
    );
    if second > 59 {
        return None;
    }
    let mut rest = &bytes[19..];
    let mut nanos = 0;
    if let [b'.', fraction @ ..] = rest {
        let len = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=9).contains(&len) {
            return None;
        }
        nanos = digits(&fraction[..len])? * 10u32.pow(9 - len as u32);
        rest = &fraction[len..];
    }
    let offset_seconds = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = (hours * 3600 + minutes * 60) as i32;
            if *sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        _ => return None,
    };
    let offset = FixedOffset::east_opt(offset_seconds)?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    day.and_time(time).and_local_timezone(offset).single()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INSTANTS: &[&str] = &[
        "2026-11-02T07:30:00.000+01:00",
        "2026-11-02T07:30:00Z",
        "2026-11-02T07:30:00.123456Z",
        "2026-11-02T07:30:00.123456789-09:30",
        "2026-11-02T23:59:59.9+23:59",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-12:00",
        "2024-02-29T12:00:00+00:00",
        "2026-02-29T12:00:00+00:00",
        "2026-11-02T24:00:00Z",
        "2026-11-02T07:60:00Z",
        "2026-11-02T07:30:60Z",
        "2026-11-02T23:59:60.5Z",
        "2026-11-02T07:30:00.1234567891Z",
        "2026-11-02T07:30:00.Z",
        "2026-11-02T07:30:00+24:00",
        "2026-11-02T07:30:00+01:60",
        "2026-11-02T07:30:00-00:00",
        "2026-11-02T07:30:00+0100",
        "2026-11-02T07:30:00+01",
        "2026-11-02t07:30:00z",
        "2026-11-02 07:30:00Z",
        "2026-11-02T07:30Z",
        "2026-11-02T07:30:00",
        "2026-11-02T7:30:00Z",
        "+2026-11-02T07:30:00Z",
        "2026-11-02T07:30:00Z ",
        "",
    ];

    fn agree(text: &str) {
        assert_eq!(
            parse_instant(text).map_err(|e| e.to_string()),
            text.parse::<DateTime<FixedOffset>>()
                .map_err(|e| e.to_string()),
            "{text:?}"
        );
        assert_eq!(
            parse_rfc3339(text).map_err(|e| e.to_string()),
            DateTime::parse_from_rfc3339(text).map_err(|e| e.to_string()),
            "{text:?}"
        );
        // Same instant and same offset, not only the same point in time.
        if let Ok(ours) = parse_instant(text) {
            assert_eq!(
                ours.offset(),
                text.parse::<DateTime<FixedOffset>>().unwrap().offset()
            );
        }
    }

    #[test]
    fn instants_read_as_chrono_reads_them() {
        for text in INSTANTS {
            agree(text);
        }
        assert!(
            plain_instant(INSTANTS[0].as_bytes()).is_some(),
            "the fast path is taken"
        );
    }

    #[test]
    fn days_read_as_chrono_reads_them() {
        for text in [
            "2026-11-02",
            "0001-01-01",
            "2024-02-29",
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-1-05",
            "2026-01-5x",
            "+2026-01-01",
            "2026/01/05",
            "",
        ] {
            assert_eq!(
                parse_day(text).map_err(|e| e.to_string()),
                text.parse::<NaiveDate>().map_err(|e| e.to_string()),
                "{text:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_instant_of_the_usual_shape_reads_as_chrono_reads_it(
            year in 0u32..10_000, month in 0u32..14, day in 0u32..33,
            hour in 0u32..26, minute in 0u32..62, second in 0u32..62,
            fraction in proptest::option::of("[0-9]{0,11}"),
            zone in prop_oneof![
                Just("Z".to_string()),
                (any::<bool>(), 0u32..26, 0u32..62).prop_map(|(minus, h, m)| {
                    format!("{}{h:02}:{m:02}", if minus { '-' } else { '+' })
                }),
            ],
        ) {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            let text = format!(
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{zone}"
            );
            agree(&text);
        }
    }
}
