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

use chrono::NaiveDate;
use heeldiary_core::{Entry, Field, FieldRef, Kind, Writer};
use serde_json::{json, Value};

use crate::columns::count_unit;
use crate::diary::PreparedPatient;
use crate::ExportKey;
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

/// A resource id: letters, digits, `-` and `.` only.
fn resource_id(text: &str) -> String {
    text.replace('_', "-")
}

/// The resources of one patient: the Patient, then its Observations.
pub(crate) struct Resources {
    pub patient: Value,
    pub observations: Vec<Value>,
}

/// The FHIR resources of one patient.
pub(crate) fn resources(patient: &PreparedPatient, key: &ExportKey, identified: bool) -> Resources {
    let subject = key.subject_id(patient.patient_id);
    let mut observations = Vec::new();
    if let Some(first_day) = patient.first_day {
        for exported in &patient.entries {
            let entry = &exported.entry;
            let facts = EntryFacts {
                subject,
                entry_key: &key.entry_key(entry.id),
                first_day,
                identified,
            };
            observations.extend(entry_observations(&facts, entry));
        }
    }
    Resources {
        patient: patient_resource(subject, patient.patient_id, identified),
        observations,
    }
}

/// The Patient resource of a subject: its pseudonymous identifier, and its id on the server
/// when identified.
pub(crate) fn patient_resource(subject: i64, patient_id: Uuid, identified: bool) -> Value {
    let mut identifiers = vec![json!({"system": SUBJECT_SYSTEM, "value": subject.to_string()})];
    if identified {
        identifiers.push(json!({"system": PATIENT_SYSTEM, "value": patient_id.to_string()}));
    }
    json!({
        "resourceType": "Patient",
        "id": format!("s{subject}"),
        "identifier": identifiers,
    })
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
pub(crate) fn entry_observations(facts: &EntryFacts<'_>, entry: &Entry) -> Vec<Value> {
    let identified = facts.identified;
    let category = json!([{
        "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "survey",
            "display": "Survey"
        }]
    }]);
    let study_day = (entry.day - facts.first_day).num_days();
    let mut observations = Vec::new();
    for field in Field::ALL {
        let spec = field.spec();
        if spec.writer != Writer::Person {
            continue;
        }
        let value = match (spec.kind, entry.get(*field)) {
            (Kind::Score, FieldRef::Number(n)) => json!({"valueInteger": n}),
            (Kind::Count { .. }, FieldRef::Number(n)) => {
                let unit = count_unit(*field);
                let code = if unit == "min" { "min" } else { "{count}" };
                json!({"valueQuantity": {
                    "value": n, "unit": unit,
                    "system": "http://unitsofmeasure.org", "code": code
                }})
            }
            (Kind::Flag, FieldRef::Flag(b)) => json!({"valueBoolean": b}),
            (Kind::Word(vocabulary), FieldRef::Word(at)) => json!({"valueCodeableConcept": {
                "coding": [word_coding(*field, vocabulary.words[at])],
                "text": vocabulary.words[at],
            }}),
            (Kind::Words(vocabulary), FieldRef::Words(set)) => {
                let words: Vec<&str> = (0..vocabulary.words.len())
                    .filter(|at| set.contains_position(*at))
                    .map(|at| vocabulary.words[at])
                    .collect();
                json!({"valueCodeableConcept": {
                    "coding": words.iter().map(|w| word_coding(*field, w)).collect::<Vec<_>>(),
                    "text": words.join(", "),
                }})
            }
            (Kind::Text { .. }, FieldRef::Text(text)) if identified => {
                json!({"valueString": text})
            }
            _ => continue,
        };
        let code = match loinc_of(*field) {
            Some((code, display)) => json!({
                "coding": [{"system": LOINC, "code": code, "display": display}],
                "text": spec.help,
            }),
            None => json!({
                "coding": [{"system": FIELD_SYSTEM, "code": spec.name, "display": spec.help}],
                "text": spec.help,
            }),
        };
        let mut extensions = Vec::new();
        if loinc_of(*field).is_some() {
            extensions.push(json!({"url": SITUATION_URL, "valueCode": spec.name}));
        }
        let mut observation = json!({
            "resourceType": "Observation",
            "id": resource_id(&format!("o{}-{}", facts.entry_key, spec.name)),
            "status": "final",
            "category": category,
            "code": code,
            "subject": {"reference": format!("Patient/s{}", facts.subject)},
        });
        if identified {
            observation["effectiveDateTime"] = json!(entry.day.to_string());
        } else {
            extensions.push(json!({"url": STUDY_DAY_URL, "valueInteger": study_day}));
        }
        if !extensions.is_empty() {
            observation["extension"] = Value::Array(extensions);
        }
        if let (Some(map), Value::Object(v)) = (observation.as_object_mut(), value) {
            map.extend(v);
        }
        observations.push(observation);
    }
    observations
}

fn word_coding(field: Field, word: &str) -> Value {
    json!({"system": WORD_SYSTEM, "code": format!("{}/{word}", field.as_str())})
}
