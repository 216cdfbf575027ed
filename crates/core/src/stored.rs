//! An entry state as the server stores it, and an entry made from merged field values, whether
//! they are held parsed ([`EntryState`]) or as that stored text: one conversion, fed each field's
//! value by a deserializer, so both forms give the same entry or the same error. Reading the text
//! this way skips building a JSON tree, which is what a bulk reader pays for.
//!
//! The stored text groups the fields under the stamp of the operation that wrote them,
//! `{"by_stamp": {stamp: {name: value}}}`. Most entries are written once and never edited, so
//! they carry one stamp instead of one per field (the wire form, [`EntryState`]'s own serde form,
//! repeats it per field): the text is about a third as long, and the server writes it with every
//! push and reads it with every export.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
use uuid::Uuid;

use crate::entry::Entry;
use crate::error::ValidationError;
use crate::field::Field;
use crate::hlc::Hlc;
use crate::op::{EntryError, EntryState, FieldValue};

/// An [`EntryState`] in its stored form: `Stored(&state)` serializes it, `Stored<EntryState>`
/// deserializes one (for a JSON column read and written through serde).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<S>(pub S);

impl Serialize for Stored<&EntryState> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut by_stamp: BTreeMap<Hlc, Vec<(Field, &Value)>> = BTreeMap::new();
        for (field, current) in &self.0.fields {
            by_stamp
                .entry(current.hlc)
                .or_default()
                .push((*field, &current.value));
        }
        struct Group<'a>(&'a [(Field, &'a Value)]);
        impl Serialize for Group<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().map(|(field, value)| (field, value)))
            }
        }
        struct Groups<'a>(BTreeMap<Hlc, Vec<(Field, &'a Value)>>);
        impl Serialize for Groups<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().map(|(hlc, group)| (hlc, Group(group))))
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("by_stamp", &Groups(by_stamp))?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Stored<EntryState> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Text {
            by_stamp: Groups,
        }
        struct Groups(EntryState);
        impl<'de> Deserialize<'de> for Groups {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visit;
                impl<'de> Visitor<'de> for Visit {
                    type Value = Groups;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a map from stamps to the field values they wrote")
                    }
                    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Groups, M::Error> {
                        let mut state = EntryState::default();
                        while let Some((hlc, values)) =
                            map.next_entry::<Hlc, BTreeMap<Field, Value>>()?
                        {
                            for (field, value) in values {
                                let current = FieldValue { hlc, value };
                                if state.fields.insert(field, current).is_some() {
                                    return Err(de::Error::custom(format!(
                                        "field `{field}` is stored under two stamps"
                                    )));
                                }
                            }
                        }
                        Ok(Groups(state))
                    }
                }
                d.deserialize_map(Visit)
            }
        }
        Text::deserialize(d).map(|text| Stored(text.by_stamp.0))
    }
}

impl EntryState {
    /// The text the server stores for this state (see the module's documentation).
    pub fn to_stored(&self) -> String {
        serde_json::to_string(&Stored(self)).expect("a state's values are JSON already")
    }

    /// The state whose stored text is `stored`.
    ///
    /// # Failure
    /// Text that is not a stored state (a field no entry has, a field under two stamps, an
    /// unreadable stamp), naming where.
    pub fn from_stored(stored: &str) -> Result<EntryState, serde_json::Error> {
        serde_json::from_str::<Stored<EntryState>>(stored).map(|s| s.0)
    }

    /// The entry as people see it.
    ///
    /// # Failure
    /// [`EntryError::Incomplete`] while its day or first recording is unknown (an edit that
    /// arrived before the operation that created the entry); [`EntryError::Invalid`], naming the
    /// field, when a stored value does not fit it.
    pub fn to_entry(&self, id: Uuid) -> Result<Entry, EntryError> {
        let values: Vec<(&str, &Value)> = self
            .fields
            .iter()
            .filter(|(_, current)| !current.value.is_null())
            .map(|(field, current)| (field.as_str(), &current.value))
            .collect();
        entry_from_values(id, &values)
    }

    /// The entry the stored text of a state makes: what [`EntryState::to_entry`] gives for the
    /// parsed state, read straight from the text. Key order and spacing do not matter (a JSON
    /// column may hand the text back reformatted).
    ///
    /// # Failure
    /// As [`EntryState::to_entry`]; text that is not a stored state is
    /// [`EntryError::Invalid`] on `fields`.
    pub fn entry_from_stored(id: Uuid, stored: &str) -> Result<Entry, EntryError> {
        match plain_stored_values(stored) {
            Some(values) => entry_from_values(id, &values),
            None => entry_from_parsed_text(id, stored),
        }
    }

    /// The day written in the stored text of a state, deleted or not, when it has a readable
    /// one: what a reader that orders stored states by day sorts on.
    pub fn stored_day(stored: &str) -> Option<NaiveDate> {
        #[derive(Deserialize)]
        struct Text<'a> {
            #[serde(borrow)]
            by_stamp: DayOf<'a>,
        }
        struct DayOf<'a>(Option<Cow<'a, str>>);
        impl<'de: 'a, 'a> Deserialize<'de> for DayOf<'a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                struct Group<'a> {
                    #[serde(borrow)]
                    day: Option<Cow<'a, str>>,
                }
                struct Visit<'a>(std::marker::PhantomData<&'a ()>);
                impl<'de: 'a, 'a> Visitor<'de> for Visit<'a> {
                    type Value = DayOf<'a>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a map from stamps to field values")
                    }
                    fn visit_map<M: MapAccess<'de>>(
                        self,
                        mut map: M,
                    ) -> Result<DayOf<'a>, M::Error> {
                        let mut day = None;
                        while let Some((de::IgnoredAny, group)) =
                            map.next_entry::<de::IgnoredAny, Group<'a>>()?
                        {
                            day = day.or(group.day);
                        }
                        Ok(DayOf(day))
                    }
                }
                d.deserialize_map(Visit(std::marker::PhantomData))
            }
        }
        let text: Text<'_> = serde_json::from_str(stored).ok()?;
        text.by_stamp.0?.parse().ok()
    }
}

/// [`EntryState::entry_from_stored`] through the JSON parser, for text of any form.
fn entry_from_parsed_text(id: Uuid, stored: &str) -> Result<Entry, EntryError> {
    let values: StoredValues<'_> =
        serde_json::from_str(stored).map_err(|e| EntryError::Invalid {
            id,
            source: ValidationError::new("fields", e.to_string()),
        })?;
    entry_from_values(id, &values.0)
}

/// The entry made of `values` (each field's name and its non-null value): the id is added, and
/// whether it was back-filled is derived once the day and the recording time are read.
fn entry_from_values<'v, V>(id: Uuid, values: &[(&str, V)]) -> Result<Entry, EntryError>
where
    V: Deserializer<'v, Error = serde_json::Error> + Copy,
{
    for required in [Field::Day, Field::RecordedAt] {
        if !values.iter().any(|(name, _)| *name == required.as_str()) {
            return Err(EntryError::Incomplete {
                id,
                missing: required,
            });
        }
    }
    // Values almost always fit; the path to the one that does not is traced only then.
    let mut entry = match Entry::deserialize(ValuesAsEntry { values, id }) {
        Ok(entry) => entry,
        Err(_) => {
            let traced: Result<Entry, _> =
                serde_path_to_error::deserialize(ValuesAsEntry { values, id });
            return Err(match traced {
                Ok(_) => EntryError::Invalid {
                    id,
                    source: ValidationError::new("fields", "unreadable values"),
                },
                Err(e) => EntryError::Invalid {
                    id,
                    source: ValidationError::new(e.path().to_string(), reason(e.inner())),
                },
            });
        }
    };
    entry.backfilled = Entry::is_backfilled(entry.day, &entry.recorded_at);
    Ok(entry)
}

/// Why a value was refused, without where in its text: a value read from stored text would
/// otherwise add its position inside that one value, which says nothing to anyone.
fn reason(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&position) {
        Some(reason) if error.line() > 0 => reason.to_string(),
        _ => text,
    }
}

/// A stored state's non-null values, borrowed from its text, the stamps skipped.
struct StoredValues<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for StoredValues<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Text<'a> {
            #[serde(borrow)]
            by_stamp: ByStamp<'a>,
        }
        struct ByStamp<'a>(Vec<(&'a str, &'a RawValue)>);
        impl<'de: 'a, 'a> Deserialize<'de> for ByStamp<'a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Groups<'a>(std::marker::PhantomData<&'a ()>);
                impl<'de: 'a, 'a> Visitor<'de> for Groups<'a> {
                    type Value = ByStamp<'a>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a map from stamps to field values")
                    }
                    fn visit_map<M: MapAccess<'de>>(
                        self,
                        mut map: M,
                    ) -> Result<Self::Value, M::Error> {
                        let mut values = Vec::with_capacity(24);
                        while map.next_key::<de::IgnoredAny>()?.is_some() {
                            map.next_value_seed(GroupInto(&mut values))?;
                        }
                        Ok(ByStamp(values))
                    }
                }
                d.deserialize_map(Groups(std::marker::PhantomData))
            }
        }
        /// Appends one stamp's values to those of the stamps before it.
        struct GroupInto<'v, 'a>(&'v mut Vec<(&'a str, &'a RawValue)>);
        impl<'de: 'a, 'a> DeserializeSeed<'de> for GroupInto<'_, 'a> {
            type Value = ();
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_map(self)
            }
        }
        impl<'de: 'a, 'a> Visitor<'de> for GroupInto<'_, 'a> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of field values")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
                while let Some((name, value)) = map.next_entry::<FieldName, &'a RawValue>()? {
                    // A cleared field is as good as absent.
                    if value.get() != "null" {
                        self.0.push((name.0, value));
                    }
                }
                Ok(())
            }
        }
        Text::deserialize(d).map(|text| StoredValues(text.by_stamp.0))
    }
}

/// The non-null values of a stored state's text, found without a JSON parser when the text
/// keeps to the plain form every writer gives it: JSON white space between tokens, names and
/// strings without escapes or control characters, values that are such strings, whole numbers,
/// `true`, `false`, `null` or lists of such strings, and field names from the table. `None` for
/// anything else, which the full parse then reads or refuses with its reasons.
///
/// Each value is the exact text the full parse would have handed on, so both give the same
/// entry or the same error; bulk readers (an export decodes every stored state) skip the
/// parser's pass over the structure.
fn plain_stored_values(text: &str) -> Option<Vec<(&'static str, JsonText<'_>)>> {
    let mut scan = PlainScan { text, at: 0 };
    scan.token(b'{')?;
    if scan.string()? != "by_stamp" {
        return None;
    }
    scan.token(b':')?;
    let mut values = Vec::with_capacity(24);
    scan.object(|scan| {
        scan.string()?; // the stamp: the entry takes none
        scan.token(b':')?;
        scan.object(|scan| {
            let field: Field = scan.string()?.parse().ok()?;
            scan.token(b':')?;
            let value = scan.value()?;
            // A cleared field is as good as absent.
            if value != "null" {
                values.push((field.as_str(), JsonText(value)));
            }
            Some(())
        })
    })?;
    scan.token(b'}')?;
    scan.skip_space();
    (scan.at == text.len()).then_some(values)
}

/// A cursor over stored text for [`plain_stored_values`]: each step gives `None` where the text
/// leaves the plain form.
struct PlainScan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> PlainScan<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Skips white space, then takes `byte`.
    fn token(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        if self.peek()? != byte {
            return None;
        }
        self.at += 1;
        Some(())
    }

    /// Skips white space, then takes `byte` if it comes next.
    fn takes(&mut self, byte: u8) -> bool {
        self.skip_space();
        let next = self.peek() == Some(byte);
        self.at += usize::from(next);
        next
    }

    /// An object whose members `member` reads one by one (from its key to its value).
    fn object(&mut self, mut member: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.token(b'{')?;
        if self.takes(b'}') {
            return Some(());
        }
        loop {
            member(self)?;
            if !self.takes(b',') {
                return self.token(b'}');
            }
        }
    }

    /// A string without escapes or control characters: its contents.
    fn string(&mut self) -> Option<&'a str> {
        self.token(b'"')?;
        let start = self.at;
        let length = string_stop(&self.text.as_bytes()[start..])?;
        // The string ends at its closing quote, not at an escape or a control character (a
        // tab there is not white space between tokens).
        let end = start + length;
        if self.text.as_bytes()[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        Some(&self.text[start..end])
    }

    /// A value of the plain form: its text.
    fn value(&mut self) -> Option<&'a str> {
        self.skip_space();
        let start = self.at;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'[' => {
                self.at += 1;
                if !self.takes(b']') {
                    loop {
                        self.string()?;
                        if !self.takes(b',') {
                            self.token(b']')?;
                            break;
                        }
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                self.at += usize::from(self.peek() == Some(b'-'));
                let digits = self.text.as_bytes()[self.at..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                // A sign without digits, or a leading zero: left to the parser (as are a
                // fraction and an exponent, which the end check below finds).
                let first = self.peek()?;
                if digits == 0 || (first == b'0' && digits > 1) {
                    return None;
                }
                self.at += digits;
            }
            _ => {
                let word = ["true", "false", "null"]
                    .into_iter()
                    .find(|word| self.text[start..].starts_with(word))?;
                self.at += word.len();
            }
        }
        // The value ends here: what follows must end it (`1.5`, `truex` are not plain).
        match self.text.as_bytes().get(self.at) {
            Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') | None => {
                Some(&self.text[start..self.at])
            }
            Some(_) => None,
        }
    }
}

/// Whether a string's text stops at `byte`: a quote, a backslash or a control character.
fn is_string_stop(byte: &u8) -> bool {
    matches!(byte, b'"' | b'\\' | 0..=0x1f)
}

/// Where a string's text stops: the first quote, backslash or control character of `bytes`.
///
/// Eight bytes a step: each stored state holds a dozen strings, and a bulk reader scans every
/// one. Each mask flags the bytes of a word that are below 0x20, a quote or a backslash; a flag
/// may be a false alarm only above a true one of its mask (a borrow runs upwards), so the lowest
/// flag of the three is exact.
fn string_stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let below = |word: u64, limit: u8| word.wrapping_sub(ONES * u64::from(limit)) & !word;
    let equal = |word: u64, byte: u8| below(word ^ (ONES * u64::from(byte)), 1);
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let stops = (below(word, 0x20) | equal(word, b'"') | equal(word, b'\\')) & HIGH_BITS;
        if stops != 0 {
            return Some(at + stops.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(is_string_stop)
        .map(|i| at + i)
}

/// The text of one JSON value, read as [`RawValue`] reads: each request goes to a parser over
/// just that text.
#[derive(Clone, Copy)]
struct JsonText<'a>(&'a str);

macro_rules! json_text_forwards {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
            serde_json::Deserializer::from_str(self.0).$method($($arg,)* visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for JsonText<'de> {
    type Error = serde_json::Error;

    json_text_forwards! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
        deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
        deserialize_string(); deserialize_bytes(); deserialize_byte_buf(); deserialize_option();
        deserialize_unit(); deserialize_seq(); deserialize_map(); deserialize_identifier();
        deserialize_ignored_any();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
    }
}

/// A field name as stored, checked against the field table (so a name no field has is refused
/// whatever else the state lacks), held as the table's own text.
struct FieldName(&'static str);

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = FieldName;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<FieldName, E> {
                name.parse::<Field>()
                    .map(|field| FieldName(field.as_str()))
                    .map_err(|_| E::custom(format!("unknown field `{name}`")))
            }
        }
        d.deserialize_str(Name)
    }
}

/// Field values seen as the entry's JSON object: each value, then the id and a placeholder
/// `backfilled` (derived once the day and the recording time are read).
struct ValuesAsEntry<'s, T> {
    values: &'s [(&'s str, T)],
    id: Uuid,
}

impl<'de, T> Deserializer<'de> for ValuesAsEntry<'_, T>
where
    T: Deserializer<'de, Error = serde_json::Error> + Copy,
{
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(ValuesAsEntryMap {
            values: self.values.iter(),
            id: Some(self.id),
            backfilled: true,
            next: Next::Nothing,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

enum Next<V> {
    Nothing,
    Value(V),
    Id(Uuid),
    Backfilled,
}

struct ValuesAsEntryMap<'s, V> {
    values: std::slice::Iter<'s, (&'s str, V)>,
    id: Option<Uuid>,
    backfilled: bool,
    next: Next<V>,
}

impl<'de, V> MapAccess<'de> for ValuesAsEntryMap<'_, V>
where
    V: Deserializer<'de, Error = serde_json::Error> + Copy,
{
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let key = if let Some((name, value)) = self.values.next() {
            self.next = Next::Value(*value);
            *name
        } else if let Some(id) = self.id.take() {
            self.next = Next::Id(id);
            "id"
        } else if std::mem::take(&mut self.backfilled) {
            self.next = Next::Backfilled;
            "backfilled"
        } else {
            return Ok(None);
        };
        seed.deserialize(IntoDeserializer::<serde_json::Error>::into_deserializer(
            key,
        ))
        .map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, Self::Error> {
        match std::mem::replace(&mut self.next, Next::Nothing) {
            Next::Value(value) => seed.deserialize(value),
            Next::Id(id) => {
                let mut text = Uuid::encode_buffer();
                let text: &str = id.hyphenated().encode_lower(&mut text);
                seed.deserialize(IntoDeserializer::<serde_json::Error>::into_deserializer(
                    text,
                ))
            }
            Next::Backfilled => seed.deserialize(
                IntoDeserializer::<serde_json::Error>::into_deserializer(false),
            ),
            Next::Nothing => Err(de::Error::custom("a value without its key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hlc, Op};
    use proptest::prelude::*;
    use serde_json::json;

    fn state(patches: &[Value]) -> EntryState {
        let mut state = EntryState::default();
        for (at, patch) in patches.iter().enumerate() {
            let device = Uuid::from_u128(7 + at as u128);
            state.apply(&Op {
                entry_id: Uuid::from_u128(1),
                device_id: device,
                device_seq: 1,
                hlc: Hlc {
                    wall_ms: 1_000 + at as u64,
                    counter: 0,
                    node: device,
                },
                patch: serde_json::from_value(patch.clone()).unwrap(),
            });
        }
        state
    }

    proptest! {
        #[test]
        fn a_string_stops_where_its_first_quote_backslash_or_control_character_is(
            bytes in proptest::collection::vec(
                prop_oneof![
                    4 => 0x20u8..0x7f,
                    1 => Just(b'"'),
                    1 => Just(b'\\'),
                    1 => 0u8..0x20,
                    1 => 0x7fu8..=0xff,
                ],
                0..40,
            )
        ) {
            prop_assert_eq!(string_stop(&bytes), bytes.iter().position(is_string_stop));
        }
    }

    fn whole() -> Value {
        json!({
            "day": "2026-10-01",
            "recorded_at": "2026-10-04T08:00:00.000+02:00",
            "first_step_pain": 7,
            "locations": ["arch", "heel_bottom"],
            "numbness": "mild",
            "radiating": true,
            "steps": 4200,
            "note": "a \"quoted\" note \\u00e9",
        })
    }

    #[test]
    fn the_stored_text_makes_the_entry_the_parsed_state_makes() {
        let id = Uuid::from_u128(1);
        let cases = [
            vec![whole()],
            vec![whole(), json!({"locations": null, "first_step_pain": 2})],
            vec![json!({"first_step_pain": 3})],
            vec![json!({"day": "2026-10-01"})],
            vec![whole(), json!({"first_step_pain": "seven"})],
            vec![whole(), json!({"day": "2026-13-01"})],
            vec![whole(), json!({"recorded_at": null})],
            vec![whole(), json!({"deleted": false})],
        ];
        for patches in cases {
            let state = state(&patches);
            let text = state.to_stored();
            assert_eq!(
                EntryState::entry_from_stored(id, &text),
                state.to_entry(id),
                "{text}"
            );
            assert_eq!(EntryState::from_stored(&text).unwrap(), state, "{text}");
            // A JSON column may hand the text back with spaces and its own key order.
            let spaced = serde_json::to_string_pretty(&Stored(&state)).unwrap();
            assert_eq!(EntryState::from_stored(&spaced).unwrap(), state);
            assert_eq!(
                EntryState::entry_from_stored(id, &spaced),
                state.to_entry(id)
            );
        }
    }

    #[test]
    fn a_value_that_does_not_fit_names_its_field() {
        let id = Uuid::from_u128(1);
        let error = state(&[whole(), json!({"first_step_pain": "seven"})])
            .to_entry(id)
            .unwrap_err();
        assert!(
            matches!(&error, EntryError::Invalid { source, .. } if source.field == "first_step_pain"),
            "{error}"
        );
        let missing = state(&[json!({"day": "2026-10-01"})])
            .to_entry(id)
            .unwrap_err();
        assert_eq!(
            missing,
            EntryError::Incomplete {
                id,
                missing: Field::RecordedAt
            }
        );
    }

    #[test]
    fn text_that_is_not_a_stored_state_is_refused() {
        let id = Uuid::from_u128(1);
        let stamp = "000000000001-000000-00000000000000000000000000000007";
        let refused = [
            "not json".to_string(),
            "{}".to_string(),
            format!(r#"{{"by_stamp": {{"{stamp}": {{"colour": 1}}}}}}"#),
            // The wire form is not the stored one.
            serde_json::to_string(&state(&[whole()])).unwrap(),
        ];
        for text in &refused {
            let error = EntryState::entry_from_stored(id, text).unwrap_err();
            assert!(!error.is_incomplete(), "{text}: {error}");
            assert!(EntryState::from_stored(text).is_err(), "{text}");
        }
        // An escaped name is read as the field it spells.
        let escaped = format!(
            r#"{{"by_stamp": {{"{stamp}": {{"d\u0061y": "2026-10-01",
            "recorded_at": "2026-10-01T08:00:00+02:00"}}}}}}"#
        );
        let entry = EntryState::entry_from_stored(id, &escaped).unwrap();
        assert_eq!(entry.day.to_string(), "2026-10-01");
        assert!(EntryState::from_stored(&escaped).is_ok());
    }

    #[test]
    fn a_day_written_days_after_it_is_back_filled() {
        let id = Uuid::from_u128(1);
        let state = state(&[json!({
            "day": "2026-10-01", "recorded_at": "2026-10-04T08:00:00.000+02:00"
        })]);
        let text = state.to_stored();
        assert!(EntryState::entry_from_stored(id, &text).unwrap().backfilled);
        assert!(state.to_entry(id).unwrap().backfilled);
    }

    #[test]
    fn the_stored_day_is_read_from_deleted_states_too() {
        let deleted = state(&[whole(), json!({"deleted": true})]);
        let text = deleted.to_stored();
        assert_eq!(
            EntryState::stored_day(&text),
            NaiveDate::from_ymd_opt(2026, 10, 1)
        );
        // The day edited later is read from the group of the later stamp.
        let moved = state(&[whole(), json!({"day": "2026-10-02"})]).to_stored();
        assert_eq!(
            EntryState::stored_day(&moved),
            NaiveDate::from_ymd_opt(2026, 10, 2)
        );
        let dayless = state(&[json!({"first_step_pain": 3})]).to_stored();
        assert_eq!(EntryState::stored_day(&dayless), None);
        assert_eq!(EntryState::stored_day("not json"), None);
    }

    #[test]
    fn an_entry_written_once_stores_its_stamp_once() {
        let once = state(&[whole()]);
        let text = once.to_stored();
        let stamp = once.fields[&Field::Day].hlc.to_string();
        assert_eq!(text.matches(&stamp).count(), 1, "{text}");
        assert!(
            text.len() * 2 < serde_json::to_string(&once).unwrap().len(),
            "{text}"
        );
        // An edit adds the editing stamp once, with just the fields it won.
        let edited = state(&[whole(), json!({"first_step_pain": 2, "steps": 4200})]);
        let text = edited.to_stored();
        let value: Value = serde_json::from_str(&text).unwrap();
        let groups = value["by_stamp"].as_object().unwrap();
        assert_eq!(groups.len(), 2, "{text}");
        let edit_stamp = edited.fields[&Field::FirstStepPain].hlc.to_string();
        // `steps` moves to the edit's stamp too: the same value with a higher stamp wins.
        assert_eq!(
            groups[&edit_stamp],
            json!({"first_step_pain": 2, "steps": 4200})
        );
    }

    #[test]
    fn a_field_under_two_stamps_is_refused_by_name() {
        let text = r#"{"by_stamp": {
            "000000000001-000000-00000000000000000000000000000007": {"steps": 1},
            "000000000002-000000-00000000000000000000000000000007": {"steps": 2}}}"#;
        let error = EntryState::from_stored(text).unwrap_err();
        assert!(error.to_string().contains("`steps`"), "{error}");
        let bad_stamp = r#"{"by_stamp": {"yesterday": {"steps": 1}}}"#;
        assert!(EntryState::from_stored(bad_stamp).is_err());
        let extra = r#"{"by_stamp": {}, "fields": {}}"#;
        assert!(EntryState::from_stored(extra).is_err());
        assert_eq!(
            EntryState::from_stored(r#"{"by_stamp": {}}"#).unwrap(),
            EntryState::default()
        );
    }

    #[test]
    fn plain_text_is_read_without_the_parser_and_gives_what_the_parser_gives() {
        let id = Uuid::from_u128(1);
        let plain = state(&[
            whole(),
            json!({"note": "plain", "first_step_pain": 2, "steps": null}),
        ]);
        let compact = plain.to_stored();
        let spaced = serde_json::to_string_pretty(&Stored(&plain)).unwrap();
        for text in [&compact, &spaced] {
            assert!(plain_stored_values(text).is_some(), "{text}");
            assert_eq!(
                EntryState::entry_from_stored(id, text),
                entry_from_parsed_text(id, text)
            );
            assert_eq!(EntryState::entry_from_stored(id, text), plain.to_entry(id));
        }
        let stamp = "000000000001-000000-00000000000000000000000000000007";
        let not_plain = [
            // An escape, a fraction, an exponent, a leading zero, a nested list, an object.
            format!(r#"{{"by_stamp":{{"{stamp}":{{"note":"a \"b\""}}}}}}"#),
            // A control character inside a string, even one that is white space outside.
            format!("{{\"by_stamp\":{{\"{stamp}\":{{\"note\":\"a\t\"}}}}}}"),
            format!("{{\"by_stamp\":{{\"{stamp}\":{{\"day\t\":1}}}}}}"),
            format!(r#"{{"by_stamp":{{"{stamp}":{{"steps":1.5}}}}}}"#),
            format!(r#"{{"by_stamp":{{"{stamp}":{{"steps":1e3}}}}}}"#),
            format!(r#"{{"by_stamp":{{"{stamp}":{{"steps":012}}}}}}"#),
            format!(r#"{{"by_stamp":{{"{stamp}":{{"locations":[["arch"]]}}}}}}"#),
            format!(r#"{{"by_stamp":{{"{stamp}":{{"steps":{{}}}}}}}}"#),
            // A name no field has, another key, a word run on, text after the end.
            format!(r#"{{"by_stamp":{{"{stamp}":{{"colour":1}}}}}}"#),
            r#"{"by_stamp":{},"fields":{}}"#.to_string(),
            format!(r#"{{"by_stamp":{{"{stamp}":{{"radiating":truex}}}}}}"#),
            r#"{"by_stamp":{}} x"#.to_string(),
            "[]".to_string(),
        ];
        for text in &not_plain {
            assert!(plain_stored_values(text).is_none(), "{text}");
        }
    }

    /// Text near the plain form, from its pieces: the plain ones and those that leave it. Most
    /// texts start with a group that makes a whole entry, so that entries come out as well as
    /// errors.
    fn near_plain_text() -> impl Strategy<Value = String> {
        let space = prop_oneof![
            Just(""),
            Just(""),
            Just(" "),
            Just("\n  "),
            Just("\t"),
            Just("\r\n")
        ];
        let string = prop_oneof![
            Just(r#""2026-10-01""#.to_string()),
            Just(r#""2026-10-04T08:00:00.000+02:00""#.to_string()),
            Just(r#""mild""#.to_string()),
            Just(r#""a note""#.to_string()),
            Just(r#""é plain, ünïcode ✓""#.to_string()),
            Just(r#""é \" \u00e9""#.to_string()),
            Just(r#""bad \x escape""#.to_string()),
            Just("\"tab\tinside\"".to_string()),
            Just("\"tab at the end\t\"".to_string()),
            Just(r#""""#.to_string()),
        ];
        let value = prop_oneof![
            string.clone(),
            (prop::collection::vec(string, 0..3), space.clone()).prop_map(
                |(items, space)| format!(
                    "[{space}{}{space}]",
                    items.join(&format!("{space},{space}"))
                )
            ),
            Just(r#"["arch", "heel_bottom"]"#.to_string()),
            Just("[1]".to_string()),
            (-3i64..14).prop_map(|n| n.to_string()),
            prop_oneof![
                Just("007"),
                Just("-0"),
                Just("-01"),
                Just("- 1"),
                Just("--1"),
                Just("4.5"),
                Just("2e1"),
                Just("-"),
                Just("1x"),
                Just("99999999999999999999"),
            ]
            .prop_map(str::to_string),
            prop_oneof![
                Just("true"),
                Just("false"),
                Just("null"),
                Just("nul"),
                Just("nulll"),
                Just("{}"),
                Just(r#"{"a": 1}"#),
            ]
            .prop_map(str::to_string),
        ];
        let name = prop_oneof![
            Just("day"),
            Just("recorded_at"),
            Just("first_step_pain"),
            Just("locations"),
            Just("numbness"),
            Just("radiating"),
            Just("steps"),
            Just("note"),
            Just("deleted"),
            Just("colour"),
            Just("d\\u0061y"),
            Just("day\t"),
        ];
        let member = (name, space.clone(), value, space.clone())
            .prop_map(|(name, before, value, after)| format!(r#""{name}"{before}:{after}{value}"#));
        let stamp = prop_oneof![
            Just("000000000001-000000-00000000000000000000000000000007"),
            Just("000000000002-000000-00000000000000000000000000000008"),
        ];
        let whole = r#""000000000003-000000-00000000000000000000000000000009":{"day":"2026-10-01","recorded_at":"2026-10-04T08:00:00.000+02:00","first_step_pain":4,"locations":["arch","heel_bottom"],"note":"é plain"}"#;
        let group = prop_oneof![
            8 => (stamp, prop::collection::vec(member, 0..6), space.clone()).prop_map(
                |(stamp, members, space)| {
                    let members = members.join(&format!("{space},{space}"));
                    format!(r#""{stamp}":{space}{{{space}{members}{space}}}"#)
                },
            ),
            1 => Just(r#""000000000004-000000-00000000000000000000000000000009": 5"#.to_string()),
        ];
        let groups = (
            prop::bool::weighted(0.7),
            prop::collection::vec(group, 0..3),
        )
            .prop_map(move |(with_whole, mut groups)| {
                if with_whole {
                    groups.insert(0, whole.to_string());
                }
                groups.join(",")
            });
        let key = prop_oneof![8 => Just(r#""by_stamp""#), 1 => Just(r#""by_stampx""#)];
        let ending = prop_oneof![
            Just(""),
            Just(""),
            Just(""),
            Just("  \n"),
            Just(" x"),
            Just("}"),
            Just(r#", "fields": {}}"#),
        ];
        (key, groups, space, ending).prop_map(|(key, groups, space, ending)| {
            let close = if ending.starts_with(',') { "" } else { "}" };
            format!("{{{space}{key}{space}:{space}{{{groups}}}{space}{close}{ending}")
        })
    }

    /// The texts the property test below draws take both readings and make whole entries as
    /// well as errors, so that it compares what matters.
    #[test]
    fn near_plain_texts_reach_both_readings_and_whole_entries() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut plain, mut entries, drawn) = (0, 0, 2_000);
        for _ in 0..drawn {
            let text = near_plain_text().new_tree(&mut runner).unwrap().current();
            plain += usize::from(plain_stored_values(&text).is_some());
            entries +=
                usize::from(EntryState::entry_from_stored(Uuid::from_u128(3), &text).is_ok());
        }
        assert!(
            plain > drawn / 10 && plain < drawn * 9 / 10,
            "{plain} of {drawn} plain"
        );
        assert!(entries > drawn / 20, "{entries} of {drawn} whole entries");
    }

    proptest! {
        /// Text read without the parser gives the values, and so the entry or the error, the
        /// parser gives.
        #[test]
        fn plain_reading_agrees_with_the_parser(text in near_plain_text()) {
            let id = Uuid::from_u128(3);
            if let Some(plain) = plain_stored_values(&text) {
                let parsed = serde_json::from_str::<StoredValues<'_>>(&text);
                prop_assert!(parsed.is_ok(), "{}: {:?}", text, parsed.err());
                let parsed: Vec<(&str, &str)> =
                    parsed.unwrap().0.iter().map(|(name, raw)| (*name, raw.get())).collect();
                let plain: Vec<(&str, &str)> =
                    plain.iter().map(|(name, value)| (*name, value.0)).collect();
                prop_assert_eq!(plain, parsed, "{}", text);
            }
            prop_assert_eq!(
                EntryState::entry_from_stored(id, &text),
                entry_from_parsed_text(id, &text),
                "{}", text
            );
        }

        /// Whatever values merge into a state (fitting their fields or not, cleared or not),
        /// its text and its parsed form make the same entry or the same kind of refusal.
        #[test]
        fn both_forms_agree_on_any_merged_values(
            pain in prop::option::of(0i64..14),
            sitting in prop::option::of(prop_oneof![Just(json!(3)), Just(json!("x")), Just(Value::Null)]),
            with_day in any::<bool>(),
            with_recorded in any::<bool>(),
            days_late in 0u32..5,
        ) {
            let mut patch = serde_json::Map::new();
            if with_day {
                patch.insert("day".into(), json!("2026-10-01"));
            }
            if with_recorded {
                patch.insert(
                    "recorded_at".into(),
                    json!(format!("2026-10-{:02}T08:00:00+02:00", 1 + days_late)),
                );
            }
            if let Some(pain) = pain {
                patch.insert("first_step_pain".into(), json!(pain));
            }
            let mut patches = vec![Value::Object(patch)];
            if let Some(sitting) = sitting {
                patches.push(json!({"sitting_pain": sitting}));
            }
            let state = state(&patches);
            let id = Uuid::from_u128(9);
            let text = state.to_stored();
            prop_assert_eq!(EntryState::entry_from_stored(id, &text), state.to_entry(id));
            prop_assert_eq!(EntryState::from_stored(&text).unwrap(), state);
        }
    }
}
