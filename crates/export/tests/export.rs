//! The exporter over in-memory files: what each format holds, what de-identification leaves
//! out, how history is counted, and that small aggregate cells are withheld.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{NaiveDate, TimeZone, Utc};
use heeldiary_core::wire::PulledOp;
use heeldiary_core::{Field, Hlc, Op, Patch};
use heeldiary_export::{
    entry_columns, EntryRecord, ExportError, ExportKey, Exporter, Format, Options, OutputFiles,
    PatientDiary,
};
use serde_json::{json, Value};
use uuid::Uuid;

type Buffer = Arc<Mutex<Vec<u8>>>;

#[derive(Default, Clone)]
struct Memory(Arc<Mutex<BTreeMap<String, Buffer>>>);

struct MemoryFile(Arc<Mutex<Vec<u8>>>);

impl Write for MemoryFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl OutputFiles for Memory {
    fn create(&mut self, path: &str) -> Result<Box<dyn Write + Send>, ExportError> {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        self.0
            .lock()
            .unwrap()
            .insert(path.to_string(), Arc::clone(&buffer));
        Ok(Box::new(MemoryFile(buffer)))
    }
}

impl Memory {
    fn bytes(&self, path: &str) -> Vec<u8> {
        let files = self.0.lock().unwrap();
        let file = files.get(path).unwrap_or_else(|| panic!("{path} missing"));
        let bytes = file.lock().unwrap().clone();
        bytes
    }
    fn text(&self, path: &str) -> String {
        String::from_utf8(self.bytes(path)).unwrap()
    }
    fn all_bytes(&self) -> Vec<(String, Vec<u8>)> {
        let files = self.0.lock().unwrap();
        files
            .iter()
            .map(|(k, v)| (k.clone(), v.lock().unwrap().clone()))
            .collect()
    }
}

fn key() -> ExportKey {
    ExportKey::from_bytes([42; 32])
}

/// A diary builder: ops with stamps and cursors in order.
struct Diary {
    patient_id: Uuid,
    device: Uuid,
    seq: u64,
    ops: Vec<PulledOp>,
}

impl Diary {
    fn new() -> Self {
        Diary {
            patient_id: Uuid::now_v7(),
            device: Uuid::now_v7(),
            seq: 0,
            ops: Vec::new(),
        }
    }

    fn op(&mut self, device: Uuid, entry_id: Uuid, received: (i32, u32, u32), patch: Value) {
        self.seq += 1;
        let patch: Patch = serde_json::from_value(patch).unwrap();
        let received_at = Utc
            .with_ymd_and_hms(received.0, received.1, received.2, 12, 0, 0)
            .unwrap();
        self.ops.push(PulledOp {
            cursor: self.seq,
            received_at,
            op: Op {
                entry_id,
                device_id: device,
                device_seq: self.seq,
                hlc: Hlc {
                    wall_ms: 1_700_000_000_000 + self.seq * 1000,
                    counter: 0,
                    node: device,
                },
                patch,
            },
        });
    }

    fn entry(&mut self, day: u32, pain: u8, note: &str) -> Uuid {
        let id = Uuid::now_v7();
        self.op(
            self.device,
            id,
            (2026, 10, day),
            json!({
                "day": format!("2026-10-{day:02}"),
                "recorded_at": format!("2026-10-{day:02}T07:30:00.000+02:00"),
                "first_step_pain": pain,
                "numbness": "mild",
                "locations": ["heel_bottom", "arch"],
                "note": note,
            }),
        );
        id
    }

    fn diary(&self) -> PatientDiary {
        PatientDiary {
            patient_id: self.patient_id,
            ops: self.ops.clone(),
        }
    }
}

fn export(
    format: Format,
    identified: bool,
    diaries: &[PatientDiary],
) -> (Memory, heeldiary_export::Summary) {
    let mut files = Memory::default();
    let options = Options {
        identified,
        ..Options::new(format, Utc::now())
    };
    let mut exporter = Exporter::new(options, key(), &mut files).unwrap();
    for diary in diaries {
        exporter.add(diary).unwrap();
    }
    let summary = exporter.finish(&mut files).unwrap();
    (files, summary)
}

#[test]
fn de_identified_files_hold_no_note_date_or_id() {
    let mut d = Diary::new();
    let ids: Vec<Uuid> = (1..=5)
        .map(|day| d.entry(day, day as u8, &format!("secret-note-{day}")))
        .collect();
    for format in Format::ALL {
        let (files, summary) = export(format, false, &[d.diary()]);
        assert_eq!(summary.patients, 1, "{format}");
        for (path, bytes) in files.all_bytes() {
            let text = String::from_utf8_lossy(&bytes);
            for needle in ["secret-note", "2026-10-", "+02:00"] {
                assert!(!text.contains(needle), "{format} {path} holds {needle}");
            }
            let mut needles = vec![d.patient_id.to_string(), d.device.to_string()];
            needles.extend(ids.iter().map(Uuid::to_string));
            for id in needles {
                assert!(!text.contains(&id), "{format} {path} holds an id");
            }
        }
    }
}

#[test]
fn identified_csv_keeps_ids_dates_and_notes() {
    let mut d = Diary::new();
    let id = d.entry(3, 4, "kept note");
    let (files, _) = export(Format::Csv, true, &[d.diary()]);
    let csv = files.text("entries.csv");
    assert!(csv.contains("kept note"));
    assert!(csv.contains("2026-10-03"));
    assert!(csv.contains(&id.to_string()));
    assert!(csv.contains(&d.patient_id.to_string()));
}

#[test]
fn ndjson_rows_have_study_days_from_the_first_entry_and_every_table_column() {
    let mut d = Diary::new();
    d.entry(10, 2, "a");
    d.entry(14, 6, "b");
    let (files, summary) = export(Format::Ndjson, false, &[d.diary()]);
    assert_eq!(summary.rows["entries"], 2);
    let rows: Vec<Value> = files
        .text("entries.ndjson")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["study_day"], json!(0));
    assert_eq!(rows[1]["study_day"], json!(4));
    assert_eq!(rows[1]["year"], json!(2026));
    assert_eq!(rows[1]["first_step_pain"], json!(6));
    assert_eq!(rows[1]["locations"], json!(["heel_bottom", "arch"]));
    assert_eq!(rows[0]["subject_id"], rows[1]["subject_id"]);
    let names: Vec<String> = rows[0].as_object().unwrap().keys().cloned().collect();
    let columns: Vec<String> = entry_columns(false).into_iter().map(|c| c.name).collect();
    let mut sorted = columns.clone();
    sorted.sort();
    let mut got = names.clone();
    got.sort();
    assert_eq!(got, sorted);
}

#[test]
fn edits_conflicts_and_deletions_are_counted_and_deleted_entries_left_out() {
    let mut d = Diary::new();
    let edited = d.entry(1, 3, "x");
    let other_device = Uuid::now_v7();
    let device = d.device;
    d.op(device, edited, (2026, 10, 2), json!({"first_step_pain": 5}));
    d.op(
        other_device,
        edited,
        (2026, 10, 2),
        json!({"first_step_pain": 7}),
    );
    let deleted = d.entry(2, 1, "y");
    d.op(device, deleted, (2026, 10, 20), json!({"deleted": true}));
    let (files, _) = export(Format::Ndjson, false, &[d.diary()]);
    let rows: Vec<Value> = files
        .text("entries.ndjson")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "the deleted entry is left out");
    assert_eq!(rows[0]["edits"], json!(2));
    assert_eq!(rows[0]["conflicted"], json!(true));
    assert_eq!(rows[0]["first_step_pain"], json!(7));

    // Incremental: changes since the 15th are the deletion only.
    let mut files = Memory::default();
    let options = Options {
        since: NaiveDate::from_ymd_opt(2026, 10, 15),
        ..Options::new(Format::Csv, Utc::now())
    };
    let mut exporter = Exporter::new(options, key(), &mut files).unwrap();
    exporter.add(&d.diary()).unwrap();
    let summary = exporter.finish(&mut files).unwrap();
    assert_eq!(summary.rows["entries"], 0);
    assert_eq!(summary.rows["deletions"], 1);
    assert!(files
        .text("deletions.csv")
        .contains(&key().entry_key(deleted)));
}

#[test]
fn since_after_until_is_refused_before_any_file_is_made() {
    let mut files = Memory::default();
    let options = Options {
        since: NaiveDate::from_ymd_opt(2026, 10, 15),
        until: NaiveDate::from_ymd_opt(2026, 10, 1),
        ..Options::new(Format::Csv, Utc::now())
    };
    let err = Exporter::new(options, key(), &mut files).err().unwrap();
    assert!(err
        .to_string()
        .contains("--since 2026-10-15 is after --until 2026-10-01"));
    assert!(files.all_bytes().is_empty());
    assert!("xml"
        .parse::<Format>()
        .unwrap_err()
        .to_string()
        .contains("unknown format `xml`"));
}

#[test]
fn aggregate_cells_of_fewer_than_eleven_patients_are_suppressed() {
    let cohort = |n: usize| -> Vec<PatientDiary> {
        (0..n)
            .map(|_| {
                let mut d = Diary::new();
                for day in 1..=20 {
                    d.entry(day, 5, "n");
                }
                d.diary()
            })
            .collect()
    };
    let (files, small) = export(Format::Csv, false, &cohort(3));
    assert!(small.suppressed_cells >= 1);
    let summary = files.text("findings-summary.csv");
    assert!(
        summary.lines().skip(1).all(|l| l.ends_with(",,true")),
        "{summary}"
    );
    let manifest: Value = serde_json::from_slice(&files.bytes("manifest.json")).unwrap();
    assert_eq!(manifest["suppressed_cells"], json!(small.suppressed_cells));

    let (files, large) = export(Format::Csv, false, &cohort(11));
    assert_eq!(large.suppressed_cells, 0);
    assert!(files.text("findings-summary.csv").contains(",11,false"));
    // One findings row per patient and month.
    assert_eq!(large.rows["findings"], 11);
}

#[test]
fn findings_rows_follow_the_patients_in_order_however_many_wait_for_their_statistics() {
    // More patients than the findings thread takes ahead, each with its own pain level, so a
    // row out of order or missing shows.
    let diaries: Vec<PatientDiary> = (0..60u8)
        .map(|p| {
            let mut d = Diary::new();
            for day in 1..=(5 + u32::from(p % 20)) {
                d.entry(day, p % 11, "n");
            }
            d.diary()
        })
        .collect();
    let (files, summary) = export(Format::Csv, false, &diaries);
    assert_eq!(summary.rows["findings"], 60);
    let subjects: Vec<i64> = diaries
        .iter()
        .map(|d| key().subject_id(d.patient_id))
        .collect();
    let findings = files.text("findings.csv");
    let mut lines = findings.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let days_logged = header.iter().position(|c| *c == "days_logged").unwrap();
    let rows: Vec<(i64, u32)> = lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            (
                cells[0].parse().unwrap(),
                cells[days_logged].parse().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(i64, u32)> = subjects
        .iter()
        .zip(0..60u32)
        .map(|(subject, p)| (*subject, 5 + p % 20))
        .collect();
    assert_eq!(rows, expected);
}

/// Files of which only the entries are kept, as the HTTP export keeps one file.
struct EntriesOnly(Memory);

impl OutputFiles for EntriesOnly {
    fn create(&mut self, path: &str) -> Result<Box<dyn Write + Send>, ExportError> {
        self.0.create(path)
    }

    fn keeps(&self, path: &str) -> bool {
        path.starts_with("entries.")
    }
}

#[test]
fn an_export_keeping_only_the_entries_works_out_no_findings() {
    let diaries: Vec<PatientDiary> = (0..11)
        .map(|_| {
            let mut d = Diary::new();
            for day in 1..=20 {
                d.entry(day, 5, "n");
            }
            d.diary()
        })
        .collect();
    for format in [Format::Csv, Format::Ndjson, Format::Parquet] {
        let (all, all_summary) = export(format, false, &diaries);
        let mut kept = EntriesOnly(Memory::default());
        let mut exporter =
            Exporter::new(Options::new(format, Utc::now()), key(), &mut kept).unwrap();
        for diary in &diaries {
            exporter.add(diary).unwrap();
        }
        let summary = exporter.finish(&mut kept).unwrap();
        let entries = format!("entries.{}", format.as_str());
        assert_eq!(kept.0.bytes(&entries), all.bytes(&entries), "{format}");
        assert_eq!(summary.rows["entries"], all_summary.rows["entries"]);
        assert_eq!(all_summary.rows["findings"], 11, "{format}");
        // No month was summarised: no findings rows, no cells.
        assert!(!summary.rows.contains_key("findings"), "{format}");
        assert_eq!(summary.rows["findings-summary"], 0, "{format}");
    }
}

#[test]
fn the_same_patient_gets_the_same_pseudonym_in_every_format() {
    let mut d = Diary::new();
    d.entry(1, 1, "n");
    let subject = key().subject_id(d.patient_id).to_string();
    let (csv, _) = export(Format::Csv, false, &[d.diary()]);
    assert!(csv.text("entries.csv").contains(&subject));
    let (fhir, _) = export(Format::Fhir, false, &[d.diary()]);
    assert!(fhir.text("Patient.ndjson").contains(&subject));
}

#[test]
fn fhir_pain_scores_are_loinc_coded_with_the_study_day() {
    let mut d = Diary::new();
    d.entry(1, 6, "n");
    let (files, summary) = export(Format::Fhir, false, &[d.diary()]);
    let observations: Vec<Value> = files
        .text("Observation.ndjson")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(summary.rows["Observation"], observations.len() as u64);
    let pain = observations
        .iter()
        .find(|o| o["code"]["coding"][0]["code"] == json!("72514-3"))
        .expect("a LOINC 72514-3 observation");
    assert_eq!(pain["valueInteger"], json!(6));
    assert_eq!(
        pain["code"]["text"],
        json!(Field::FirstStepPain.spec().help)
    );
    assert!(pain.get("effectiveDateTime").is_none());
    assert!(pain["extension"].to_string().contains("study-day"));
    let manifest: Value = serde_json::from_slice(&files.bytes("manifest.json")).unwrap();
    assert_eq!(manifest["output"][1]["type"], json!("Observation"));
    assert_eq!(manifest["output"][1]["count"], json!(observations.len()));
}

#[test]
fn parquet_columns_are_typed() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut d = Diary::new();
    d.entry(1, 6, "n");
    let (files, _) = export(Format::Parquet, false, &[d.diary()]);
    let reader =
        SerializedFileReader::new(bytes::Bytes::from(files.bytes("entries.parquet"))).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr();
    let physical = |name: &str| {
        schema
            .columns()
            .iter()
            .find(|c| c.name() == name)
            .map(|c| c.physical_type())
            .unwrap_or_else(|| panic!("{name}"))
    };
    use parquet::basic::Type;
    assert_eq!(physical("first_step_pain"), Type::INT32); // Int8 is stored as INT32 with an INT(8) annotation
    assert_eq!(physical("subject_id"), Type::INT64);
    assert_eq!(physical("backfilled"), Type::BOOLEAN);
    assert_eq!(reader.metadata().file_metadata().num_rows(), 1);
}

/// What storage hands a streamed export: one record per entry, with the operations only of
/// entries made by more than one.
fn stored_records(diary: &PatientDiary) -> Vec<EntryRecord> {
    let mut by_entry: BTreeMap<Uuid, Vec<PulledOp>> = BTreeMap::new();
    for pulled in &diary.ops {
        by_entry
            .entry(pulled.op.entry_id)
            .or_default()
            .push(pulled.clone());
    }
    by_entry
        .into_iter()
        .map(|(id, ops)| {
            let mut record = EntryRecord::from_ops(id, ops);
            if record.ops.len() == 1 {
                record.ops.clear();
            }
            record
        })
        .collect()
}

fn streamed(format: Format, diaries: &[PatientDiary], reverse: bool) -> Memory {
    let mut files = Memory::default();
    let options = Options::new(format, Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
    let mut exporter = Exporter::new(options, key(), &mut files).unwrap();
    for diary in diaries {
        let mut records = stored_records(diary);
        // The order storage reads them in.
        if format.in_day_order() {
            records.sort_by_key(|r| (r.day(), r.entry_id));
        }
        if reverse {
            records.reverse();
        }
        let first_day = records
            .iter()
            .filter_map(EntryRecord::live_entry)
            .map(|e| e.day)
            .min();
        exporter.start_patient(diary.patient_id, first_day).unwrap();
        for record in records {
            exporter.add_entry(record).unwrap();
        }
        exporter.finish_patient().unwrap();
    }
    exporter.finish(&mut files).unwrap();
    files
}

#[test]
fn a_streamed_export_writes_what_the_whole_feed_writes() {
    let mut d = Diary::new();
    for day in 1..=28 {
        d.entry(day, (day % 11) as u8, "n");
    }
    let edited = d.entry(29, 3, "x");
    let device = d.device;
    d.op(
        Uuid::now_v7(),
        edited,
        (2026, 10, 30),
        json!({"first_step_pain": 7}),
    );
    d.op(
        device,
        edited,
        (2026, 10, 30),
        json!({"first_step_pain": 5}),
    );
    let deleted = d.entry(30, 1, "y");
    d.op(device, deleted, (2026, 10, 31), json!({"deleted": true}));
    // Written last about an early day: id order and day order differ.
    d.entry(2, 9, "late");
    let mut other = Diary::new();
    other.entry(3, 4, "z");
    let diaries = [d.diary(), other.diary()];
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();

    for format in Format::ALL {
        let mut whole = Memory::default();
        let mut exporter = Exporter::new(Options::new(format, at), key(), &mut whole).unwrap();
        for diary in &diaries {
            exporter.add(diary).unwrap();
        }
        exporter.finish(&mut whole).unwrap();
        let stream = streamed(format, &diaries, false);
        assert_eq!(stream.all_bytes(), whole.all_bytes(), "{format}");
    }

    // The formats kept in time order list each patient's entries by day, the late one second.
    let fhir = streamed(Format::Fhir, &diaries, false);
    let study_days: Vec<(String, i64)> = fhir
        .text("Observation.ndjson")
        .lines()
        .map(|line| {
            let o: Value = serde_json::from_str(line).unwrap();
            let day = o["extension"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["url"].as_str().unwrap().ends_with("study-day"))
                .unwrap()["valueInteger"]
                .as_i64()
                .unwrap();
            (o["subject"]["reference"].as_str().unwrap().to_string(), day)
        })
        .collect();
    for pair in study_days.windows(2) {
        assert!(pair[0].0 != pair[1].0 || pair[0].1 <= pair[1].1, "{pair:?}");
    }
    assert!(study_days.iter().any(|(_, day)| *day == 1));
    let meds = streamed(Format::Meds, &diaries, false);
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(meds.bytes("data/0.parquet")),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut times = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let subjects = batch
            .column_by_name("subject_id")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap()
            .clone();
        let time = batch
            .column_by_name("time")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
            .unwrap()
            .clone();
        times.extend(
            subjects
                .values()
                .iter()
                .copied()
                .zip(time.values().iter().copied()),
        );
    }
    for pair in times.windows(2) {
        assert!(pair[0].0 != pair[1].0 || pair[0].1 <= pair[1].1, "{pair:?}");
    }

    // In another order the rows come in that order; the findings are the same.
    let forward = streamed(Format::Csv, &diaries, false);
    let backward = streamed(Format::Csv, &diaries, true);
    assert_eq!(backward.text("findings.csv"), forward.text("findings.csv"));
    let sorted = |text: String| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    assert_eq!(
        sorted(backward.text("entries.csv")),
        sorted(forward.text("entries.csv"))
    );
    let rows: Vec<Value> = forward
        .text("manifest.json")
        .parse::<Value>()
        .map(|m| vec![m["row_counts"].clone()])
        .unwrap();
    assert_eq!(rows[0]["entries"], json!(31));
}

#[test]
fn a_patient_must_be_started_before_its_entries() {
    let mut files = Memory::default();
    let mut exporter =
        Exporter::new(Options::new(Format::Csv, Utc::now()), key(), &mut files).unwrap();
    let record = EntryRecord::from_ops(Uuid::now_v7(), Vec::new());
    assert!(exporter.add_entry(record).is_err());
    assert!(exporter.finish_patient().is_err());
    exporter.start_patient(Uuid::now_v7(), None).unwrap();
    assert!(exporter.start_patient(Uuid::now_v7(), None).is_err());
    assert!(
        !exporter.finish_patient().unwrap(),
        "a patient with nothing adds no row"
    );
}
