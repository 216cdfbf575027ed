//! Domain of heeldiary: the field table (every entry field declared once, with its kind and
//! rule), the vocabularies, diary entries and their validation, the hybrid logical clock,
//! field-level operations and their merge, and the sync wire types.
//!
//! Everything here is pure: no file, network or database access, so the same rules run on a
//! phone, on the server and in analysis. This crate must never depend on any other heeldiary
//! crate, nor on an I/O library (rusqlite, reqwest, tokio, axum).
//!
//! ```
//! use heeldiary_core::{EntryInput, Hlc, HlcClock, Op};
//! use uuid::Uuid;
//!
//! let device = Uuid::now_v7();
//! let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
//! let input: EntryInput = serde_json::from_str(
//!     r#"{"day":"2026-11-01","recorded_at":"2026-11-01T07:30:00+01:00","first_step_pain":7}"#,
//! ).unwrap();
//! let patch = input.into_patch(today).unwrap();
//! let mut clock = HlcClock::new(device, Hlc::zero(device));
//! let op = Op { entry_id: Uuid::now_v7(), device_id: device, device_seq: 1, hlc: clock.tick(1_000), patch };
//! let state = heeldiary_core::merge(op.entry_id, [&op]);
//! assert_eq!(state.to_entry().unwrap().first_step_pain, Some(7));
//! ```

pub mod calendar;
mod entry;
mod error;
mod field;
mod hlc;
mod op;
mod stored;
mod text;
mod vocab;
pub mod wire;

pub use entry::{Entry, EntryInput, FieldRef};
pub use error::ValidationError;
pub use field::{
    Field, Kind, Patch, Spec, Writer, EARLIEST_DAY, MAX_NOTE_CHARS, MAX_SCORE,
    MAX_STANDING_MINUTES, MAX_STEPS,
};
pub use hlc::{ClockError, Hlc, HlcClock, MAX_CLOCK_AHEAD_MS};
pub use op::{merge, ApplyOutcome, EntryError, EntryState, FieldValue, MergedEntry, Op};
pub use stored::Stored;
pub use text::{check_label, check_plain_text};
pub use vocab::{Location, Severity, Side, Treatment, Trigger, Vocabulary, Word, WordSet};
