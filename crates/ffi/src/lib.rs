//! The library a phone app embeds: one `Diary` object over the store, the sync client and the
//! trend analysis, exported through UniFFI to Kotlin, Swift and Python.
//!
//! It adds no logic: every call goes to `heeldiary-store`, `heeldiary-client` or
//! `heeldiary-trends`, and the records and enums here mirror the entry JSON (same field names,
//! same words), so the app and the `heeldiary` CLI read the same diary. It is the only crate that
//! depends on uniffi; the libraries it wraps never do. It must never depend on the server crate:
//! the phone meets the server only through the `/v1` protocol. Its errors ([`FfiError`]) carry kinds an
//! app can act on and never the diary's contents.
//!
//! Threads: every call but `enroll` and `sync` is a short blocking call on the diary file (call
//! it off the UI thread); `enroll` and `sync` are async (a Kotlin `suspend` function, a Swift
//! `async` one), run on a tokio runtime inside the library, and may be cancelled: a cancelled
//! sync loses nothing and the next one resumes. They use their own handle on the file, so the
//! app keeps logging while a sync runs.

mod diary;
mod error;
mod records;
mod report;

pub use diary::{encrypt_diary, encryption_available, rekey_diary, Diary};
pub use error::FfiError;
pub use records::{
    Enrolment, Entry, EntryField, EntryInput, EntryPatch, FieldChange, HistoryChange, ListFilter,
    Location, Severity, Side, Status, SyncSummary, Treatment, Trigger,
};
pub use report::{
    Adherence, EvidenceLine, PatternView, RedFlagView, TreatmentView, TrendView, TrendsReport,
};

uniffi::setup_scaffolding!();
