//! Fuzzing on the stable toolchain: proptest over arbitrary bytes and over mutations of a
//! committed corpus of interesting inputs (`tests/fuzz-corpus/`), for the three parsers hostile
//! input reaches first: the wire decoder (push and enrolment bodies), the NDJSON import line
//! (parsed, then validated into a patch) and the clock stamp parser.
//!
//! Each target must never panic, and what it accepts must hold its invariants: a decoded
//! operation validates or is refused with a field; an accepted stamp prints back to the same text.
//! The corpus runs in full on every test run; `cargo test -p heeldiary-core --test fuzz` runs a
//! few thousand generated cases per target, and the ignored `*_long` tests many more
//! (`cargo test -p heeldiary-core --test fuzz -- --ignored`).

use std::path::PathBuf;

use chrono::NaiveDate;
use heeldiary_core::wire::{from_json, EnrolRequest, PushRequest};
use heeldiary_core::{EntryInput, Hlc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Cases per target in an ordinary run, and in the ignored long run.
const CASES: u32 = 2_000;
const LONG_CASES: u32 = 200_000;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
}

fn wire(bytes: &[u8]) {
    if let Ok(push) = from_json::<PushRequest>(bytes) {
        for op in &push.ops {
            // Either fine or refused with the field to blame; never a panic.
            if let Err(e) = op.validate(None) {
                assert!(!e.field.is_empty());
            }
            let _ = serde_json::to_string(op).expect("a decoded operation encodes");
        }
    }
    let _ = from_json::<EnrolRequest>(bytes);
}

fn import_line(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(input) = serde_json::from_str::<EntryInput>(text) {
        if let Err(e) = input.into_patch(today()) {
            assert!(!e.field.is_empty());
        }
    }
}

fn hlc(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(stamp) = text.parse::<Hlc>() {
        let printed = stamp.to_string();
        assert_eq!(printed.parse::<Hlc>().unwrap(), stamp);
    }
}

/// Corpus entries with a few bytes overwritten, inserted or cut: near-valid inputs reach the
/// deep branches that random bytes rarely do.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    (
        0..n,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8),
    )
        .prop_map(move |(i, edits)| {
            let mut bytes = seeds[i].clone();
            for (at, byte, kind) in edits {
                let len = bytes.len();
                match kind {
                    0 if len > 0 => bytes[at.index(len)] = byte,
                    1 => bytes.insert(at.index(len + 1), byte),
                    _ if len > 0 => {
                        bytes.truncate(at.index(len));
                    }
                    _ => bytes.push(byte),
                }
            }
            bytes
        })
}

fn run(cases: u32, corpus_name: &str, target: fn(&[u8])) {
    let seeds = corpus(corpus_name);
    for seed in &seeds {
        target(seed);
    }
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = prop_oneof![prop::collection::vec(any::<u8>(), 0..512), mutated(seeds)];
    runner
        .run(&strategy, |bytes| {
            target(&bytes);
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_wire_decoder_takes_any_bytes() {
    run(CASES, "wire", wire);
}

#[test]
fn an_import_line_takes_any_bytes() {
    run(CASES, "import", import_line);
}

#[test]
fn the_stamp_parser_takes_any_bytes() {
    run(CASES, "hlc", hlc);
}

#[test]
#[ignore = "long: many cases per target"]
fn the_parsers_take_any_bytes_long() {
    run(LONG_CASES, "wire", wire);
    run(LONG_CASES, "import", import_line);
    run(LONG_CASES, "hlc", hlc);
}
