//! The `Diary` object and the file-level calls (encrypt, rekey).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::NaiveDate;
use heeldiary_client::SyncOptions;
use heeldiary_store::{DiaryKey, Store, StoreError};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::FfiError;
use crate::records::{
    Enrolment, Entry, EntryInput, EntryPatch, FieldChange, HistoryChange, ListFilter, Status,
    SyncSummary,
};
use crate::report::TrendsReport;

/// One patient's diary file on the device. Calls are safe from any thread; each holds the file
/// for as long as one write or read takes.
#[derive(uniffi::Object)]
pub struct Diary {
    path: PathBuf,
    key: Option<DiaryKey>,
    store: Mutex<Store>,
}

fn key_of(secret: Option<Vec<u8>>) -> Result<Option<DiaryKey>, FfiError> {
    Ok(secret
        .map(|secret| DiaryKey::from_secret(&secret))
        .transpose()?)
}

fn parse_id(id: &str) -> Result<Uuid, FfiError> {
    Uuid::parse_str(id.trim()).map_err(|_| FfiError::invalid("id", "must be a UUID"))
}

fn parse_day(field: &str, day: Option<&str>) -> Result<Option<NaiveDate>, FfiError> {
    day.map(|text| {
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map_err(|_| FfiError::invalid(field, "must be a date YYYY-MM-DD"))
    })
    .transpose()
}

fn storage(what: impl std::fmt::Display) -> FfiError {
    FfiError::Storage {
        detail: what.to_string(),
    }
}

/// A core entry as the app's record (the same JSON on both sides).
fn entry_record(entry: &heeldiary_core::Entry) -> Result<Entry, FfiError> {
    serde_json::to_value(entry)
        .and_then(serde_json::from_value)
        .map_err(|e| storage(format!("an entry does not fit the app's record: {e}")))
}

/// The app's input as the core's, through the entry JSON; the core checks every value later.
fn core_input(input: &EntryInput) -> Result<heeldiary_core::EntryInput, FfiError> {
    let Value::Object(object) = serde_json::to_value(input).map_err(storage)? else {
        return Err(storage("an entry input is not a JSON object"));
    };
    Ok(heeldiary_core::EntryInput::from_object(object).map_err(StoreError::from)?)
}

impl Diary {
    fn store(&self) -> Result<MutexGuard<'_, Store>, FfiError> {
        // A panic in another call cannot leave the file half-written (each write is one
        // transaction), so the store behind a poisoned lock is still sound.
        Ok(self.store.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A second handle on the same file, for a sync or an enrolment: the app's calls go on
    /// while it talks to the server.
    fn network_handle(&self) -> Result<Store, FfiError> {
        Ok(Store::open_with_key(&self.path, self.key.as_ref())?)
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Diary {
    /// Opens (creating if needed) the diary at `path`. With `key` (at least 16 random bytes,
    /// e.g. from the Android Keystore or the iOS Keychain) the file is encrypted; a wrong key is
    /// refused and leaves the file untouched.
    #[uniffi::constructor]
    pub fn open(path: String, key: Option<Vec<u8>>) -> Result<Arc<Self>, FfiError> {
        let key = key_of(key)?;
        let store = Store::open_with_key(&path, key.as_ref())?;
        Ok(Arc::new(Diary {
            path: path.into(),
            key,
            store: Mutex::new(store),
        }))
    }

    /// Records a new entry (`day` required) and returns its id.
    pub fn log(&self, input: EntryInput) -> Result<String, FfiError> {
        let input = core_input(&input)?;
        Ok(self.store()?.log(input)?.id.to_string())
    }

    /// Sets and clears fields of an entry; earlier values stay in its history.
    pub fn edit(&self, id: String, patch: EntryPatch) -> Result<Entry, FfiError> {
        let id = parse_id(&id)?;
        let mut input = core_input(&patch.values)?;
        for field in patch.clear {
            let name = serde_json::to_value(field).map_err(storage)?;
            let name = name.as_str().unwrap_or_default();
            let field: heeldiary_core::Field = name.parse().map_err(storage)?;
            if input.fields.contains_key(&field) {
                return Err(FfiError::invalid(name, "is both set and cleared"));
            }
            input.set(field, Value::Null);
        }
        entry_record(&self.store()?.edit(id, input)?)
    }

    /// Deletes an entry (its history is kept, and sync carries the deletion).
    pub fn delete(&self, id: String) -> Result<(), FfiError> {
        let id = parse_id(&id)?;
        Ok(self.store()?.delete(id)?)
    }

    /// A live entry.
    pub fn get(&self, id: String) -> Result<Entry, FfiError> {
        let id = parse_id(&id)?;
        entry_record(&self.store()?.get(id)?)
    }

    /// Entries by day, then id.
    pub fn list(&self, filter: ListFilter) -> Result<Vec<Entry>, FfiError> {
        let from = parse_day("from", filter.from.as_deref())?;
        let to = parse_day("to", filter.to.as_deref())?;
        let store = self.store()?;
        let entries = if filter.include_deleted {
            store.list_including_deleted(from, to)?
        } else {
            store.list(from, to)?
        };
        entries.iter().map(entry_record).collect()
    }

    /// Every change of an entry, oldest first, deleted entries included.
    pub fn history(&self, id: String) -> Result<Vec<HistoryChange>, FfiError> {
        let id = parse_id(&id)?;
        let history = self.store()?.history(id)?;
        Ok(history
            .into_iter()
            .map(|op| HistoryChange {
                at: op.at.to_rfc3339(),
                device_id: op.device_id.to_string(),
                device_seq: op.device_seq,
                received_at: op.received_at.map(|t| t.to_rfc3339()),
                changes: op
                    .changes
                    .into_iter()
                    .map(|c| FieldChange {
                        field: c.field.to_string(),
                        value_json: c.value.to_string(),
                        current: c.current,
                    })
                    .collect(),
            })
            .collect())
    }

    /// Imports entries, one JSON object per line (the shape `export_ndjson` writes; ids kept
    /// when given). All or nothing; returns how many were imported.
    pub fn import_ndjson(&self, text: String) -> Result<u64, FfiError> {
        let mut inputs = Vec::new();
        let mut lines = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index as u32 + 1;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |field: &str, reason: String| FfiError::InvalidLine {
                line: number,
                field: field.into(),
                reason,
            };
            let object: Map<String, Value> = serde_json::from_str(line).map_err(|e| {
                let text = e.to_string();
                let reason = text
                    .rsplit_once(" at line ")
                    .map_or(text.as_str(), |(m, _)| m);
                bad("json", format!("not a JSON object ({reason})"))
            })?;
            let input = heeldiary_core::EntryInput::from_object(object)
                .map_err(|e| bad(&e.field, e.reason))?;
            inputs.push(input);
            lines.push(number);
        }
        match self.store()?.import(inputs, |_| {}) {
            Ok(summary) => Ok(summary.entries as u64),
            Err(StoreError::Import { index, source }) => match FfiError::from(*source) {
                FfiError::Invalid { field, reason } => Err(FfiError::InvalidLine {
                    line: lines[index],
                    field,
                    reason,
                }),
                other => Err(other),
            },
            Err(other) => Err(other.into()),
        }
    }

    /// Every live entry, one JSON object per line: what `heeldiary list --json` prints and
    /// `import_ndjson` reads.
    pub fn export_ndjson(&self) -> Result<String, FfiError> {
        let entries = self.store()?.list(None, None)?;
        let mut text = String::new();
        for entry in &entries {
            text.push_str(&serde_json::to_string(entry).map_err(storage)?);
            text.push('\n');
        }
        Ok(text)
    }

    /// Which pattern the days follow, the trend of each measure, whether treatments helped, and
    /// signs for a clinician, over `window_days` ending on `as_of` (`YYYY-MM-DD`; default
    /// today).
    pub fn trends(
        &self,
        window_days: u32,
        as_of: Option<String>,
    ) -> Result<TrendsReport, FfiError> {
        let store = self.store()?;
        let as_of =
            parse_day("as_of", as_of.as_deref())?.unwrap_or_else(|| store.now().date_naive());
        let entries = store.list(None, Some(as_of))?;
        drop(store);
        let options = heeldiary_trends::Options::new(as_of).with_window_days(window_days);
        Ok(TrendsReport::from(&heeldiary_trends::analyse(
            &entries, &options,
        )))
    }

    /// Connects the diary to a server with the single-use code the clinic gave.
    pub async fn enroll(
        &self,
        server_url: String,
        code: String,
        label: Option<String>,
    ) -> Result<Enrolment, FfiError> {
        let mut store = self.network_handle()?;
        let enrolment =
            heeldiary_client::enrol(&mut store, &server_url, &code, label.as_deref()).await?;
        Ok(Enrolment {
            server_url: enrolment.server_url,
            patient_id: enrolment.patient_id.to_string(),
        })
    }

    /// Sends this device's changes and fetches the other devices'. Cancelling it (dropping the
    /// coroutine or task) loses nothing: the next sync resumes.
    pub async fn sync(&self) -> Result<SyncSummary, FfiError> {
        let mut store = self.network_handle()?;
        let summary = heeldiary_client::sync(&mut store, &SyncOptions::default()).await?;
        Ok(SyncSummary {
            pushed: summary.pushed as u64,
            already_on_server: summary.already_on_server as u64,
            pulled: summary.pulled as u64,
            conflicts: summary.conflicts as u64,
            retries: summary.retries,
            restamped: summary.restamped as u64,
            elapsed_ms: summary.elapsed_ms,
        })
    }

    /// The device, its enrolment and its sync state.
    pub fn status(&self) -> Result<Status, FfiError> {
        let store = self.store()?;
        let state = store.sync_state()?;
        let enrolment = match store.enrolment() {
            Ok(e) => Some(Enrolment {
                server_url: e.server_url,
                patient_id: e.patient_id.to_string(),
            }),
            Err(StoreError::NotEnrolled) => None,
            Err(other) => return Err(other.into()),
        };
        Ok(Status {
            device_id: store.device_id().to_string(),
            enrolment,
            pending: state.pending,
            pull_cursor: state.pull_cursor,
            clock_offset_ms: state.clock_offset_ms,
            last_sync_at: state.last_sync_at.map(|t| t.to_rfc3339()),
            encrypted: self.key.is_some(),
        })
    }
}

/// Whether this build can encrypt diaries (it links SQLCipher).
#[uniffi::export]
pub fn encryption_available() -> bool {
    heeldiary_store::encryption_available()
}

/// Encrypts the plain diary at `path` in place with `key`; every entry and its history are
/// kept, and a crash half-way leaves the plain file or the encrypted one. Close every `Diary`
/// on the file first.
#[uniffi::export]
pub fn encrypt_diary(path: String, key: Vec<u8>) -> Result<(), FfiError> {
    let key = DiaryKey::from_secret(&key)?;
    Ok(Store::encrypt_file(path, &key)?)
}

/// Changes the key of the encrypted diary at `path`; the old key no longer opens it. Close
/// every `Diary` on the file first.
#[uniffi::export]
pub fn rekey_diary(path: String, old_key: Vec<u8>, new_key: Vec<u8>) -> Result<(), FfiError> {
    let old = DiaryKey::from_secret(&old_key)?;
    let new = DiaryKey::from_secret(&new_key)?;
    Ok(Store::rekey_file(path, &old, &new)?)
}
