//! The binary form of an operation's patch in the diary file: a few bytes per value instead of
//! its JSON text, so a diary of 100,000 entries stays within twice a plain table of the same
//! values. The wire keeps JSON; this form never leaves the device.
//!
//! A patch is a sequence of (field, value). A field is one byte, its code in [`FIELD_CODES`]
//! (append-only: codes are stored, so a code is never reused or moved), or `0` then its name
//! for a field without a code. A value starts with a tag byte:
//!
//! | tag | value |
//! |---|---|
//! | `0x80 + n` | the integer `n`, 0 to 127 |
//! | `0`, `1`, `2` | `null`, `false`, `true` |
//! | `3` | a day `YYYY-MM-DD`: days from 1970-01-01 (zigzag varint) |
//! | `4` | an instant as the core writes it (`…T…​.mmm+hh:mm`): Unix ms, then the offset in seconds (zigzag varints) |
//! | `5` | a string: length (varint), UTF-8 bytes |
//! | `6` | an integer (zigzag varint) |
//! | `7` | an array: length (varint), then each value |
//! | `8` | anything else (floats, objects): length (varint), JSON text |
//!
//! Days and instants take their short form only when it gives back the same text, so every value
//! reads back exactly as it was written.

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat};
use heeldiary_core::{Field, Patch};
use serde_json::Value;

/// Stored field codes. Append new fields at the end; never reorder or reuse a code.
const FIELD_CODES: &[&str] = &[
    "day",
    "recorded_at",
    "first_step_pain",
    "rest_pain",
    "sitting_pain",
    "activity_pain",
    "locations",
    "side",
    "radiating",
    "numbness",
    "weakness",
    "heel_tender",
    "morning_stiffness",
    "night_pain",
    "worse_with",
    "eased_with",
    "steps",
    "standing_minutes",
    "treatments",
    "note",
    "deleted",
    "saddle_numbness",
    "bladder_bowel_change",
    "fever_or_weight_loss",
];

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const DAY: u8 = 3;
const INSTANT: u8 = 4;
const STRING: u8 = 5;
const INTEGER: u8 = 6;
const ARRAY: u8 = 7;
const JSON: u8 = 8;
const SMALL: u8 = 0x80;

const EPOCH_DAY: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(day) => day,
    None => panic!("1970-01-01 is a day"),
};

/// The stored form of `patch`.
pub(crate) fn encode_patch(patch: &Patch) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    for (field, value) in patch {
        match FIELD_CODES.iter().position(|name| *name == field.as_str()) {
            Some(code) => out.push(code as u8 + 1),
            None => {
                out.push(0);
                put_bytes(&mut out, field.as_str().as_bytes());
            }
        }
        encode_value(&mut out, value);
    }
    out
}

/// Reads a patch written by [`encode_patch`].
pub(crate) fn decode_patch(bytes: &[u8]) -> Result<Patch, String> {
    let mut input = Reader { bytes, at: 0 };
    let mut patch = Patch::new();
    while !input.done() {
        let field = match input.byte()? {
            0 => {
                let name = std::str::from_utf8(input.bytes()?).map_err(|e| e.to_string())?;
                name.parse::<Field>()?
            }
            code => {
                let name = FIELD_CODES
                    .get(code as usize - 1)
                    .ok_or_else(|| format!("unknown field code {code}"))?;
                name.parse::<Field>()?
            }
        };
        patch.insert(field, decode_value(&mut input)?);
    }
    Ok(patch)
}

fn encode_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(n) if n.as_u64().is_some_and(|n| n < 128) => {
            out.push(SMALL | n.as_u64().unwrap_or_default() as u8)
        }
        Value::Number(n) if n.as_i64().is_some() => {
            out.push(INTEGER);
            put_varint(out, zigzag(n.as_i64().unwrap_or_default()));
        }
        Value::String(text) => {
            if let Some(days) = short_day(text) {
                out.push(DAY);
                put_varint(out, zigzag(days));
            } else if let Some((ms, offset)) = short_instant(text) {
                out.push(INSTANT);
                put_varint(out, zigzag(ms));
                put_varint(out, zigzag(offset));
            } else {
                out.push(STRING);
                put_bytes(out, text.as_bytes());
            }
        }
        Value::Array(items) => {
            out.push(ARRAY);
            put_varint(out, items.len() as u64);
            for item in items {
                encode_value(out, item);
            }
        }
        other => {
            out.push(JSON);
            put_bytes(out, other.to_string().as_bytes());
        }
    }
}

fn decode_value(input: &mut Reader<'_>) -> Result<Value, String> {
    Ok(match input.byte()? {
        tag if tag & SMALL != 0 => Value::from(tag & !SMALL),
        NULL => Value::Null,
        FALSE => Value::Bool(false),
        TRUE => Value::Bool(true),
        DAY => {
            let days = unzigzag(input.varint()?);
            let day = EPOCH_DAY
                .checked_add_signed(chrono::Duration::days(days))
                .ok_or("day out of range")?;
            Value::String(day.to_string())
        }
        INSTANT => {
            let ms = unzigzag(input.varint()?);
            let offset = i32::try_from(unzigzag(input.varint()?)).map_err(|e| e.to_string())?;
            let offset = FixedOffset::east_opt(offset).ok_or("offset out of range")?;
            let at = DateTime::from_timestamp_millis(ms).ok_or("instant out of range")?;
            Value::String(
                at.with_timezone(&offset)
                    .to_rfc3339_opts(SecondsFormat::Millis, false),
            )
        }
        STRING => Value::String(
            std::str::from_utf8(input.bytes()?)
                .map_err(|e| e.to_string())?
                .to_string(),
        ),
        INTEGER => Value::from(unzigzag(input.varint()?)),
        ARRAY => {
            let len = input.varint()?;
            let mut items = Vec::new();
            for _ in 0..len {
                items.push(decode_value(input)?);
            }
            Value::Array(items)
        }
        JSON => serde_json::from_slice(input.bytes()?).map_err(|e| e.to_string())?,
        tag => return Err(format!("unknown value tag {tag}")),
    })
}

fn short_day(text: &str) -> Option<i64> {
    // Only the canonical spelling is kept short: any day read back must write the same text.
    let day = heeldiary_core::calendar::parse_day(text).ok()?;
    (day.to_string() == text).then(|| (day - EPOCH_DAY).num_days())
}

fn short_instant(text: &str) -> Option<(i64, i64)> {
    let at = heeldiary_core::calendar::parse_rfc3339(text).ok()?;
    (at.to_rfc3339_opts(SecondsFormat::Millis, false) == text).then(|| {
        (
            at.timestamp_millis(),
            i64::from(at.offset().local_minus_utc()),
        )
    })
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn byte(&mut self) -> Result<u8, String> {
        let byte = *self.bytes.get(self.at).ok_or("patch cut short")?;
        self.at += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|e| e.to_string())?;
        let end = self.at.checked_add(len).ok_or("length out of range")?;
        let bytes = self.bytes.get(self.at..end).ok_or("patch cut short")?;
        self.at = end;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn every_field_has_a_stored_code() {
        for field in Field::ALL {
            assert!(
                FIELD_CODES.contains(&field.as_str()),
                "append `{field}` to FIELD_CODES"
            );
        }
    }

    #[test]
    fn a_typical_entry_takes_a_few_bytes_per_value() {
        let patch: Patch = serde_json::from_value(json!({
            "day": "2026-11-01", "recorded_at": "2026-11-01T08:15:00.123+01:00",
            "first_step_pain": 7, "rest_pain": 2, "numbness": "mild", "radiating": true,
        }))
        .unwrap();
        let bytes = encode_patch(&patch);
        assert!(bytes.len() <= 30, "{} bytes", bytes.len());
        assert_eq!(decode_patch(&bytes).unwrap(), patch);
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1000i32..1000).prop_map(|i| Value::from(f64::from(i) / 4.0)),
            ".*".prop_map(Value::String),
            (-800_000i64..800_000)
                .prop_map(|d| Value::String((EPOCH_DAY + chrono::Duration::days(d)).to_string())),
            (
                -10_000_000_000_000i64..10_000_000_000_000,
                -50_000i32..50_000
            )
                .prop_map(|(ms, offset)| Value::String(
                    DateTime::from_timestamp_millis(ms)
                        .unwrap()
                        .with_timezone(&FixedOffset::east_opt(offset).unwrap())
                        .to_rfc3339_opts(SecondsFormat::Millis, false)
                )),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9:.+Z-]{0,20})?".prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn every_patch_reads_back_exactly(
            values in prop::collection::btree_map(0..Field::ALL.len(), any_value(), 0..8)
        ) {
            let patch: Patch = values.into_iter().map(|(i, v)| (Field::ALL[i], v)).collect();
            let back = decode_patch(&encode_patch(&patch)).unwrap();
            prop_assert_eq!(
                serde_json::to_string(&back).unwrap(),
                serde_json::to_string(&patch).unwrap()
            );
        }
    }
}
