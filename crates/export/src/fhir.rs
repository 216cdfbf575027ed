//! FHIR R4 resources: one `Patient` per subject (pseudonymous identifier only, unless
//! identified) and one `Observation` per answered field of each entry, category `survey`.
//!
//! Pain ratings (score fields named `*_pain`) are coded LOINC 72514-3 "Pain severity - 0-10
//! verbal numeric rating [Score] - Reported", with the situation (first steps, after rest,
//! sitting or bending, after activity) in `code.text` and, machine-readable, in the extension
//! [`SITUATION_URL`] (`valueCode` = the field name). Every other field is coded in the code
//! system [`FIELD_SYSTEM`] by its name; words are codings of [`WORD_SYSTEM`]. An identified
//! export dates each Observation with `effectiveDateTime`; a de-identified one carries the study
//! day in the extension [`STUDY_DAY_URL`] instead.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use chrono::NaiveDate;
use heeldiary_core::{Entry, Field, FieldRef, Kind, Writer};
use serde::{Serialize, Serializer};

use crate::columns::count_unit;
use uuid::Uuid;

/// Extension on an Observation: days since the subject's first entry (`valueInteger`).
pub const STUDY_DAY_URL: &str = "urn:heeldiary:fhir:StructureDefinition:study-day";
/// Extension on a pain Observation: the situation of the rating (`valueCode`, a field name).
pub const SITUATION_URL: &str = "urn:heeldiary:fhir:StructureDefinition:pain-situation";
/// Code system of the diary's fields.
pub const FIELD_SYSTEM: &str = "urn:heeldiary:fhir:CodeSystem:field";
/// Code system of the words of the diary's vocabularies (`<field>/<word>`).
pub const WORD_SYSTEM: &str = "urn:heeldiary:fhir:CodeSystem:word";
/// Identifier system of the pseudonymous subject ids.
pub const SUBJECT_SYSTEM: &str = "urn:heeldiary:fhir:subject-id";
/// Identifier system of the server's patient ids (identified exports only).
pub const PATIENT_SYSTEM: &str = "urn:heeldiary:fhir:patient-id";

const LOINC: &str = "http://loinc.org";
const PAIN_LOINC: (&str, &str) = (
    "72514-3",
    "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
);

/// The LOINC code of a field, where one fits: the 0–10 pain rating for score fields named
/// `*_pain`.
pub(crate) fn loinc_of(field: Field) -> Option<(&'static str, &'static str)> {
    (field.kind() == Kind::Score && field.as_str().ends_with("_pain")).then_some(PAIN_LOINC)
}

/// The Patient resource of a subject: its pseudonymous identifier, and its id on the server
/// when identified.
pub(crate) fn patient_resource(subject: i64, patient_id: Uuid, identified: bool) -> Patient {
    Patient {
        id: Prefixed("s", subject),
        identifier: [
            Some(Identifier {
                system: SUBJECT_SYSTEM,
                value: IdValue::Subject(subject),
            }),
            identified.then_some(Identifier {
                system: PATIENT_SYSTEM,
                value: IdValue::Patient(patient_id),
            }),
        ],
        resource_type: "Patient",
    }
}

// The resources below are typed and serialised straight to their JSON text, borrowing what
// they can. Members are declared in alphabetical order, the order of the keys in the text.

/// A FHIR Patient.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Patient {
    id: Prefixed<i64>,
    #[serde(serialize_with = "present")]
    identifier: [Option<Identifier>; 2],
    resource_type: &'static str,
}

#[derive(Serialize)]
struct Identifier {
    system: &'static str,
    value: IdValue,
}

/// An identifier's value, written as text.
enum IdValue {
    Subject(i64),
    Patient(Uuid),
}

impl Serialize for IdValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IdValue::Subject(subject) => s.collect_str(subject),
            IdValue::Patient(id) => s.collect_str(id),
        }
    }
}

/// The members that are there, as a JSON array.
fn present<T: Serialize, S: Serializer>(items: &[Option<T>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(items.iter().flatten())
}

/// Text made of a prefix and a value, such as `s123` or `Patient/s123`, written without
/// building a string.
struct Prefixed<T>(&'static str, T);

impl<T: fmt::Display> fmt::Display for Prefixed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.0, self.1)
    }
}

impl<T: fmt::Display> Serialize for Prefixed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A resource id (letters, digits, `-` and `.` only): `o<entry key>-<field>`, each `_` written
/// as `-`.
struct ObservationId<'a> {
    entry_key: &'a str,
    field: &'static str,
}

impl fmt::Display for ObservationId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('o')?;
        dashed(f, self.entry_key)?;
        f.write_char('-')?;
        dashed(f, self.field)
    }
}

fn dashed(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for (at, part) in text.split('_').enumerate() {
        if at > 0 {
            f.write_char('-')?;
        }
        f.write_str(part)?;
    }
    Ok(())
}

impl Serialize for ObservationId<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Serialize)]
struct Coding<'a> {
    code: Code<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<&'a str>,
    system: &'a str,
}

/// A code: as given, or a word of a field's vocabulary as `<field>/<word>`.
enum Code<'a> {
    Plain(&'a str),
    Word(&'static str, &'a str),
}

impl Serialize for Code<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Code::Plain(code) => s.serialize_str(code),
            Code::Word(field, word) => s.collect_str(&format_args!("{field}/{word}")),
        }
    }
}

#[derive(Serialize)]
struct CodeableConcept<'a, C> {
    coding: C,
    text: Cow<'a, str>,
}

#[derive(Serialize)]
struct Category {
    coding: [Coding<'static>; 1],
}

#[derive(Serialize)]
struct Quantity {
    code: &'static str,
    system: &'static str,
    unit: &'static str,
    value: u32,
}

#[derive(Serialize)]
struct Reference {
    reference: Prefixed<Prefixed<i64>>,
}

/// An Observation's extensions: the situation of a pain rating and the study day.
struct Extensions<'a> {
    situation: Option<&'a str>,
    study_day: Option<i64>,
}

impl Extensions<'_> {
    fn is_empty(&self) -> bool {
        self.situation.is_none() && self.study_day.is_none()
    }
}

#[derive(Serialize)]
struct Extension<'a> {
    url: &'static str,
    #[serde(rename = "valueCode", skip_serializing_if = "Option::is_none")]
    value_code: Option<&'a str>,
    #[serde(rename = "valueInteger", skip_serializing_if = "Option::is_none")]
    value_integer: Option<i64>,
}

impl Serialize for Extensions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let situation = self.situation.map(|code| Extension {
            url: SITUATION_URL,
            value_code: Some(code),
            value_integer: None,
        });
        let study_day = self.study_day.map(|day| Extension {
            url: STUDY_DAY_URL,
            value_code: None,
            value_integer: Some(day),
        });
        s.collect_seq(situation.iter().chain(study_day.iter()))
    }
}

/// A FHIR Observation of one answered field of an entry: exactly one of the `value_*` members
/// is set.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Observation<'a> {
    category: [Category; 1],
    code: CodeableConcept<'a, [Coding<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_date_time: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Extensions::is_empty")]
    extension: Extensions<'a>,
    id: ObservationId<'a>,
    resource_type: &'static str,
    status: &'static str,
    subject: Reference,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_boolean: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_codeable_concept: Option<CodeableConcept<'a, Vec<Coding<'a>>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_integer: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_quantity: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_string: Option<&'a str>,
}

/// What the Observations of one entry are made from besides the entry.
pub(crate) struct EntryFacts<'a> {
    pub subject: i64,
    pub entry_key: &'a str,
    /// The patient's study day 0.
    pub first_day: NaiveDate,
    pub identified: bool,
}

/// The Observations of one entry: one per answered field, in field order.
pub(crate) fn entry_observations<'a>(
    facts: &'a EntryFacts<'a>,
    entry: &'a Entry,
) -> impl Iterator<Item = Observation<'a>> {
    let identified = facts.identified;
    let study_day = (entry.day - facts.first_day).num_days();
    Field::ALL.iter().filter_map(move |field| {
        let spec = field.spec();
        if spec.writer != Writer::Person {
            return None;
        }
        let mut observation = Observation {
            category: [Category {
                coding: [Coding {
                    code: Code::Plain("survey"),
                    display: Some("Survey"),
                    system: "http://terminology.hl7.org/CodeSystem/observation-category",
                }],
            }],
            code: match loinc_of(*field) {
                Some((code, display)) => CodeableConcept {
                    coding: [Coding {
                        code: Code::Plain(code),
                        display: Some(display),
                        system: LOINC,
                    }],
                    text: Cow::Borrowed(spec.help),
                },
                None => CodeableConcept {
                    coding: [Coding {
                        code: Code::Plain(spec.name),
                        display: Some(spec.help),
                        system: FIELD_SYSTEM,
                    }],
                    text: Cow::Borrowed(spec.help),
                },
            },
            effective_date_time: identified.then_some(entry.day),
            extension: Extensions {
                situation: loinc_of(*field).map(|_| spec.name),
                study_day: (!identified).then_some(study_day),
            },
            id: ObservationId {
                entry_key: facts.entry_key,
                field: spec.name,
            },
            resource_type: "Observation",
            status: "final",
            subject: Reference {
                reference: Prefixed("Patient/", Prefixed("s", facts.subject)),
            },
            value_boolean: None,
            value_codeable_concept: None,
            value_integer: None,
            value_quantity: None,
            value_string: None,
        };
        match (spec.kind, entry.get(*field)) {
            (Kind::Score, FieldRef::Number(n)) => observation.value_integer = Some(n),
            (Kind::Count { .. }, FieldRef::Number(n)) => {
                let unit = count_unit(*field);
                observation.value_quantity = Some(Quantity {
                    code: if unit == "min" { "min" } else { "{count}" },
                    system: "http://unitsofmeasure.org",
                    unit,
                    value: n,
                });
            }
            (Kind::Flag, FieldRef::Flag(b)) => observation.value_boolean = Some(b),
            (Kind::Word(vocabulary), FieldRef::Word(at)) => {
                let word = vocabulary.words[at];
                observation.value_codeable_concept = Some(CodeableConcept {
                    coding: vec![word_coding(*field, word)],
                    text: Cow::Borrowed(word),
                });
            }
            (Kind::Words(vocabulary), FieldRef::Words(set)) => {
                let words: Vec<&'static str> = (0..vocabulary.words.len())
                    .filter(|at| set.contains_position(*at))
                    .map(|at| vocabulary.words[at])
                    .collect();
                observation.value_codeable_concept = Some(CodeableConcept {
                    coding: words.iter().map(|w| word_coding(*field, w)).collect(),
                    text: Cow::Owned(words.join(", ")),
                });
            }
            (Kind::Text { .. }, FieldRef::Text(text)) if identified => {
                observation.value_string = Some(text);
            }
            _ => return None,
        }
        Some(observation)
    })
}

fn word_coding(field: Field, word: &'static str) -> Coding<'static> {
    Coding {
        code: Code::Word(field.as_str(), word),
        display: None,
        system: WORD_SYSTEM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// An entry with every field answered (every word of a list).
    fn filled_entry() -> Entry {
        let mut object = serde_json::Map::new();
        for field in Field::ALL {
            let value = match field.kind() {
                Kind::Day => json!("2026-11-05"),
                Kind::Instant => json!("2026-11-05T08:00:00.250+01:00"),
                Kind::Score => json!(6),
                Kind::Count { max } => json!(max),
                Kind::Flag => json!(true),
                Kind::Tombstone => json!(false),
                Kind::Word(vocabulary) => json!(vocabulary.words[0]),
                Kind::Words(vocabulary) => json!(vocabulary.words),
                Kind::Text { .. } => json!("a \"quoted\" note"),
            };
            object.insert(field.as_str().to_string(), value);
        }
        object.insert("id".into(), json!(Uuid::from_u128(7).to_string()));
        object.insert("backfilled".into(), json!(false));
        serde_json::from_value(Value::Object(object)).unwrap()
    }

    /// Every field a person answers makes one Observation with exactly one value (notes only
    /// when identified), and a pain rating is written as documented.
    #[test]
    fn each_answered_field_makes_one_observation_with_one_value() {
        let entry = filled_entry();
        for identified in [false, true] {
            let facts = EntryFacts {
                subject: 42,
                entry_key: "k_1",
                first_day: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
                identified,
            };
            let lines: Vec<String> = entry_observations(&facts, &entry)
                .map(|o| serde_json::to_string(&o).unwrap())
                .collect();
            // The day is the Observation's date, not an Observation of its own.
            let expected = Field::ALL
                .iter()
                .filter(|f| f.spec().writer == Writer::Person && f.kind() != Kind::Day)
                .filter(|f| identified || !matches!(f.kind(), Kind::Text { .. }))
                .count();
            assert_eq!(lines.len(), expected, "identified: {identified}");
            for line in &lines {
                let observation: Value = serde_json::from_str(line).unwrap();
                let values = observation
                    .as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| k.starts_with("value"))
                    .count();
                assert_eq!(values, 1, "{line}");
                assert_eq!(observation.get("effectiveDateTime").is_some(), identified);
            }
        }
        let facts = EntryFacts {
            subject: 42,
            entry_key: "k_1",
            first_day: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            identified: false,
        };
        let pain = entry_observations(&facts, &entry)
            .find(|o| o.id.field == Field::FirstStepPain.as_str())
            .unwrap();
        assert_eq!(
            serde_json::to_string(&pain).unwrap(),
            format!(
                concat!(
                    r#"{{"category":[{{"coding":[{{"code":"survey","display":"Survey","#,
                    r#""system":"http://terminology.hl7.org/CodeSystem/observation-category"}}]}}],"#,
                    r#""code":{{"coding":[{{"code":"72514-3","display":"{display}","#,
                    r#""system":"http://loinc.org"}}],"text":"{help}"}},"#,
                    r#""extension":[{{"url":"{SITUATION_URL}","valueCode":"first_step_pain"}},"#,
                    r#"{{"url":"{STUDY_DAY_URL}","valueInteger":4}}],"#,
                    r#""id":"ok-1-first-step-pain","resourceType":"Observation","status":"final","#,
                    r#""subject":{{"reference":"Patient/s42"}},"valueInteger":6}}"#
                ),
                display = PAIN_LOINC.1,
                help = Field::FirstStepPain.spec().help,
                SITUATION_URL = SITUATION_URL,
                STUDY_DAY_URL = STUDY_DAY_URL,
            )
        );
    }
}
