//! The server side of the analyst export: the export key, reading consenting patients from
//! storage one at a time into the pure `heeldiary-export` writers, writing a folder that
//! appears whole or not at all, and the export log. Used by `heeldiary-server export` and by
//! `GET /v1/export`; backend-neutral, it knows only [`Storage`].

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use heeldiary_export::{
    EntryRecord, ExportError as WriteError, ExportKey, Exporter, OutputFiles, PreparedEntry,
    Summary, KEY_BYTES,
};
use rand::RngCore;
use uuid::Uuid;

use crate::storage::{
    AccessRecord, ExportEntry, ExportPages, ExportRecord, Storage, StorageError, ADMINISTRATOR_ID,
};

pub use heeldiary_export::{Format, Options};

/// Name of the export key file in the data folder.
pub const KEY_FILE_NAME: &str = "export.key";

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportFailure {
    /// An option or the output folder is not usable; nothing was written.
    #[error("{0}")]
    Refused(String),
    /// The export key cannot be read or made.
    #[error("export key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Writing failed; the partial output was removed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// Storage failed; the partial output was removed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Reads the export key at `path`, creating it (32 random bytes, readable by the owner only)
/// when the file does not exist.
///
/// # Failure
/// [`ExportFailure::Key`] when the file cannot be read, is malformed, or cannot be created.
pub fn load_or_create_key(path: &Path) -> Result<ExportKey, ExportFailure> {
    let failure = |reason: String| ExportFailure::Key {
        path: path.to_owned(),
        reason,
    };
    match fs::read_to_string(path) {
        Ok(text) => ExportKey::from_hex(&text).ok_or_else(|| {
            failure(format!(
                "must hold {} hexadecimal characters",
                2 * KEY_BYTES
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; KEY_BYTES];
            rand::rng().fill_bytes(&mut bytes);
            let key = ExportKey::from_bytes(bytes);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(|e| failure(e.to_string()))?;
            }
            // Written whole under a temporary name, then linked into place: a reader never sees
            // a half-written key, and of two processes making one at once, one key wins.
            let temp = path.with_extension(format!("partial-{}", Uuid::now_v7().simple()));
            let mut options = fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let written = options.open(&temp).and_then(|mut file| {
                writeln!(file, "{}", key.to_hex())?;
                file.sync_all()
            });
            let linked = written.and_then(|()| fs::hard_link(&temp, path));
            let _ = fs::remove_file(&temp);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return load_or_create_key(path)
                }
                Err(e) => return Err(failure(e.to_string())),
            }
            Ok(key)
        }
        Err(e) => Err(failure(e.to_string())),
    }
}

/// Stored entries read per storage call: enough to keep the per-call cost small, few enough
/// that a page in memory stays a few megabytes.
const EXPORT_PAGE: u32 = 4096;

fn entry_record(stored: ExportEntry) -> EntryRecord {
    EntryRecord {
        entry_id: stored.entry_id,
        deleted: stored.deleted,
        state: stored.state,
        last_received: stored.updated_at,
        ops: stored.ops,
    }
}

/// One patient's stored entries, read a page at a time and prepared for the export's options
/// (the per-entry decoding and sorting) on a blocking thread: the one reading loop of both the
/// whole-patient and the streamed export.
///
/// Pages by id, whose key never changes. The formats kept in time order
/// ([`Format::in_day_order`]) read the patient by day from one snapshot: a day can be edited
/// while the export runs, and pages keyed by it, each read on its own, could list such an entry
/// twice or not at all.
struct EntryPages<'s, S> {
    storage: &'s S,
    patient_id: Uuid,
    preparing: Arc<Preparing>,
    /// The last entry read by id.
    after: Option<Uuid>,
    /// The snapshot read by day, once started.
    by_day: Option<ExportPages>,
    done: bool,
}

impl<'s, S: Storage> EntryPages<'s, S> {
    fn new(storage: &'s S, patient_id: Uuid, preparing: Arc<Preparing>) -> Self {
        EntryPages {
            storage,
            patient_id,
            preparing,
            after: None,
            by_day: None,
            done: false,
        }
    }

    /// The next page, or `None` after the last.
    async fn next(&mut self) -> Result<Option<Vec<PreparedEntry>>, StorageError> {
        if self.done {
            return Ok(None);
        }
        let page = if self.preparing.options.format.in_day_order() {
            let by_day = match &mut self.by_day {
                Some(pages) => pages,
                None => self.by_day.insert(
                    self.storage
                        .export_entries_by_day(self.patient_id, EXPORT_PAGE)
                        .await?,
                ),
            };
            match by_day.next_page().await? {
                Some(page) => page,
                None => {
                    self.done = true;
                    return Ok(None);
                }
            }
        } else {
            let page = self
                .storage
                .export_entries(self.patient_id, self.after, EXPORT_PAGE)
                .await?;
            self.done = page.len() < EXPORT_PAGE as usize;
            self.after = page.last().map(|e| e.entry_id);
            page
        };
        let preparing = Arc::clone(&self.preparing);
        let prepared = tokio::task::spawn_blocking(move || {
            page.into_iter()
                .map(|stored| entry_record(stored).prepare(&preparing.options, &preparing.key))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| StorageError::Internal(format!("export task failed: {e}")))?;
        Ok(Some(prepared))
    }
}

/// Files inside a folder, made on demand, buffered.
struct FolderFiles {
    root: PathBuf,
}

impl OutputFiles for FolderFiles {
    fn create(&mut self, path: &str) -> Result<Box<dyn Write + Send>, WriteError> {
        let full = self.root.join(path);
        let io = |e: std::io::Error| WriteError::Io {
            what: path.to_string(),
            source: e,
        };
        if let Some(dir) = full.parent() {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let file = File::create(&full).map_err(io)?;
        Ok(Box::new(BufWriter::with_capacity(1 << 16, file)))
    }
}

/// Checks that `out` can receive an export: it does not exist (its parent does) or is an empty
/// folder. Returns the temporary folder to write into, beside `out`.
fn prepare_output(out: &Path) -> Result<PathBuf, ExportFailure> {
    let refused = |why: String| ExportFailure::Refused(format!("--out {}: {why}", out.display()));
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(refused("is not empty; choose a new or empty folder".into()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if out.exists() => return Err(refused(format!("is not a usable folder ({e})"))),
        Err(e) => return Err(refused(e.to_string())),
    }
    let name = out
        .file_name()
        .ok_or_else(|| refused("names no folder".into()))?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(refused(format!(
            "its folder {} does not exist",
            parent.display()
        )));
    }
    let temp = parent.join(format!(".{name}.partial-{}", Uuid::now_v7().simple()));
    fs::create_dir(&temp).map_err(|e| refused(format!("cannot write beside it ({e})")))?;
    Ok(temp)
}

/// What an export run reports as it goes: patients done out of the total.
pub trait Progress {
    /// Called once the total is known.
    fn start(&mut self, _patients: u64) {}
    /// Called after each patient.
    fn advance(&mut self) {}
}

impl Progress for () {}

/// Who ran an export: what the export log and each patient's access log say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportActor {
    /// The clinic's administrator on the command line (the operating-system user).
    Admin {
        /// The user name.
        user: String,
    },
    /// An analyst over HTTP.
    Analyst {
        /// The analyst's id.
        analyst_id: Uuid,
    },
}

impl ExportActor {
    /// The export log's form: `admin:<user>` or `analyst:<id>`.
    pub fn log_name(&self) -> String {
        match self {
            ExportActor::Admin { user } => format!("admin:{user}"),
            ExportActor::Analyst { analyst_id } => format!("analyst:{analyst_id}"),
        }
    }

    /// The line a patient reads in the access log: the analyst's id (its name comes with the
    /// log), or the nil id for the clinic's administrator; what was exported, and how.
    pub fn access_record(
        &self,
        patient_id: Uuid,
        options: &Options,
        at: DateTime<Utc>,
    ) -> AccessRecord {
        let (provider_id, who) = match self {
            ExportActor::Admin { .. } => (ADMINISTRATOR_ID, "the clinic administrator"),
            ExportActor::Analyst { analyst_id } => (*analyst_id, "a research analyst"),
        };
        let how = if options.identified {
            "identified: with your id, dates and notes"
        } else {
            "de-identified"
        };
        AccessRecord {
            patient_id,
            provider_id,
            provider_name: String::new(),
            what: format!("research export ({}, {how}) by {who}", options.format),
            at,
            address: None,
            break_glass: false,
        }
    }
}

/// Exports every consenting patient into the folder `out` (created; it must not exist or be
/// empty). The files are written in a temporary folder beside it and renamed at the end, so
/// `out` holds a whole export or nothing. The export is recorded in the export log as `actor`,
/// and in the access log of every patient it holds rows of.
///
/// # Failure
/// [`ExportFailure::Refused`] for contradictory options or an unusable `out` (nothing is
/// written); a write or storage failure removes everything written.
pub async fn export_to_folder<S: Storage>(
    storage: &S,
    options: Options,
    key: ExportKey,
    out: &Path,
    actor: &ExportActor,
    progress: &mut (dyn Progress + Send),
) -> Result<Summary, ExportFailure> {
    options
        .check()
        .map_err(|e| ExportFailure::Refused(e.to_string()))?;
    let temp = prepare_output(out)?;
    let result = write_folder(storage, &options, key, &temp, progress).await;
    let (summary, exported) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = fs::remove_dir_all(&temp);
            return Err(e);
        }
    };
    // An empty folder given as --out is replaced by the finished one.
    if out.is_dir() {
        let _ = fs::remove_dir(out);
    }
    if let Err(e) = fs::rename(&temp, out) {
        let _ = fs::remove_dir_all(&temp);
        return Err(ExportFailure::Refused(format!(
            "cannot move the finished export to {}: {e}",
            out.display()
        )));
    }
    record(storage, &options, actor, "cli", &summary, exported).await?;
    Ok(summary)
}

/// What the reading side of an export hands the writing side, in order.
enum Feed {
    /// A patient starts, with its first live day.
    Patient(Uuid, Option<NaiveDate>),
    /// A page of its entries, prepared for the export's options.
    Entries(Vec<PreparedEntry>),
    /// The patient's entries are all in.
    Done,
}

/// Pages read ahead of the writer: enough to keep both sides busy, few enough to keep memory
/// to a few pages.
const PAGES_AHEAD: usize = 4;

/// What the reading half needs to prepare each entry: the export's options and its key (the
/// entry keys are made beside the decoding, off the writing thread).
struct Preparing {
    options: Options,
    key: ExportKey,
}

/// Reads every patient's stored entries page by page and prepares them (the per-entry decoding
/// and sorting), in order, into `feed`: the reading half of an export, run beside the writer.
async fn read_patients<S: Storage>(
    storage: S,
    preparing: Preparing,
    patients: Vec<Uuid>,
    feed: tokio::sync::mpsc::Sender<Result<Feed, ExportFailure>>,
) {
    let preparing = Arc::new(preparing);
    for patient_id in patients {
        let result = read_patient(&storage, &preparing, patient_id, &feed).await;
        if let Err(e) = result {
            let _ = feed.send(Err(e)).await;
            return;
        }
    }
}

async fn read_patient<S: Storage>(
    storage: &S,
    preparing: &Arc<Preparing>,
    patient_id: Uuid,
    feed: &tokio::sync::mpsc::Sender<Result<Feed, ExportFailure>>,
) -> Result<(), ExportFailure> {
    // A closed feed means the writer stopped (it failed): nothing more to read.
    let closed = || ExportFailure::Refused("the export stopped".into());
    let first_day = storage.first_entry_day(patient_id).await?;
    feed.send(Ok(Feed::Patient(patient_id, first_day)))
        .await
        .map_err(|_| closed())?;
    let mut pages = EntryPages::new(storage, patient_id, Arc::clone(preparing));
    while let Some(page) = pages.next().await? {
        feed.send(Ok(Feed::Entries(page)))
            .await
            .map_err(|_| closed())?;
    }
    feed.send(Ok(Feed::Done)).await.map_err(|_| closed())
}

async fn write_folder<S: Storage>(
    storage: &S,
    options: &Options,
    key: ExportKey,
    temp: &Path,
    progress: &mut (dyn Progress + Send),
) -> Result<(Summary, Vec<Uuid>), ExportFailure> {
    let mut files = FolderFiles {
        root: temp.to_owned(),
    };
    let patients = storage.consenting_patients().await?;
    export_into(
        storage,
        options,
        key,
        patients,
        &mut files,
        progress,
        || async { Ok(()) },
    )
    .await
}

/// Exports `patients` (the consenting ones, as the caller logged them) into `files`, in flat
/// memory: one patient's pages at a time. `written` runs after each page and each patient, once what they make is in the files:
/// a caller streaming the files elsewhere takes it from there (and may wait, which slows the
/// reading). Returns what was written and the patients who contributed a row.
///
/// # Failure
/// A storage or write failure, or one `written` reports; the files are then incomplete.
pub async fn export_into<S, W, F>(
    storage: &S,
    options: &Options,
    key: ExportKey,
    patients: Vec<Uuid>,
    files: &mut (dyn OutputFiles + Send),
    progress: &mut (dyn Progress + Send),
    mut written: W,
) -> Result<(Summary, Vec<Uuid>), ExportFailure>
where
    S: Storage,
    W: FnMut() -> F + Send,
    F: std::future::Future<Output = Result<(), ExportFailure>> + Send,
{
    let preparing = Preparing {
        options: options.clone(),
        key: key.clone(),
    };
    let mut exporter = Exporter::new(options.clone(), key, files)?;
    progress.start(patients.len() as u64);
    // Reading (the database, decoding each entry) runs on other threads while this one
    // writes: the two halves use two cores.
    let (sender, mut feed) = tokio::sync::mpsc::channel(PAGES_AHEAD);
    let reader = tokio::spawn(read_patients(storage.clone(), preparing, patients, sender));
    let mut exported = Vec::new();
    let mut current = None;
    let result = async {
        while let Some(item) = feed.recv().await {
            match item? {
                Feed::Patient(patient_id, first_day) => {
                    exporter.start_patient(patient_id, first_day)?;
                    current = Some(patient_id);
                }
                Feed::Entries(entries) => {
                    for entry in entries {
                        exporter.add_prepared(entry)?;
                    }
                    written().await?;
                }
                Feed::Done => {
                    if exporter.finish_patient()? {
                        exported.extend(current.take());
                    }
                    progress.advance();
                    written().await?;
                }
            }
        }
        Ok::<(), ExportFailure>(())
    }
    .await;
    // On a failure here the reader finds the feed closed and stops.
    drop(feed);
    // A reader that panicked closed the feed early: that is a cut export, never a whole one.
    let read = reader
        .await
        .map_err(|e| ExportFailure::Refused(format!("the export's reading stopped: {e}")));
    result?;
    read?;
    Ok((exporter.finish(files)?, exported))
}

/// Adds an export to the export log (and to the server's own log), and a line to the access
/// log of each patient in `patients`.
pub async fn record<S: Storage>(
    storage: &S,
    options: &Options,
    actor: &ExportActor,
    via: &str,
    summary: &Summary,
    patients: Vec<Uuid>,
) -> Result<(), StorageError> {
    let actor_name = actor.log_name();
    tracing::info!(
        actor = actor_name,
        via,
        format = %options.format,
        identified = options.identified,
        patients = summary.patients,
        "export"
    );
    let now = Utc::now();
    storage
        .record_export(ExportRecord {
            export_id: Uuid::now_v7(),
            exported_at: now,
            actor: actor_name,
            via: via.to_string(),
            format: options.format.to_string(),
            identified: options.identified,
            options: serde_json::json!({
                "since": options.since.map(|d| d.to_string()),
                "until": options.until.map(|d| d.to_string()),
            }),
            patients: summary.patients,
            row_counts: serde_json::to_value(&summary.rows).unwrap_or_default(),
        })
        .await?;
    let accesses = patients
        .into_iter()
        .map(|patient_id| actor.access_record(patient_id, options, now))
        .collect();
    storage.record_export_access(accesses).await
}

/// Where the HTTP export finds its key, and how its FHIR manifest names URLs.
#[derive(Debug, Clone, Default)]
pub struct ExportSettings {
    /// The export key file; `None` turns the HTTP export off.
    pub key_file: Option<PathBuf>,
    /// `https` when the server itself serves TLS.
    pub https: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance::enrolled;
    use crate::storage::{ResearchConsent, SqliteStorage};
    use heeldiary_core::{Field, Hlc, Op};

    /// An incremental export counts a patient whose only change in its range is the deletion of
    /// an entry that never got its day, in every format alike: the formats read by day list
    /// such deletions too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deletion_without_a_day_is_exported_in_every_format() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open_dir(&dir.path().join("data"))
            .await
            .unwrap();
        let (patient_id, device_id) = enrolled(&storage).await;
        let now = Utc::now();
        storage
            .set_research_consent(ResearchConsent {
                patient_id,
                device_id,
                consent: true,
                changed_at: now,
                received_at: now,
            })
            .await
            .unwrap();
        // The tombstone arrived before the entry it deletes.
        let tombstone = Op {
            entry_id: Uuid::now_v7(),
            device_id,
            device_seq: 1,
            hlc: Hlc {
                wall_ms: 1_000,
                counter: 0,
                node: device_id,
            },
            patch: [(Field::Deleted, serde_json::json!(true))].into(),
        };
        storage
            .push(patient_id, vec![tombstone], now)
            .await
            .unwrap();

        for format in Format::ALL {
            let mut options = Options::new(format, now);
            options.since = Some(now.date_naive());
            let out = dir.path().join(format.as_str());
            let summary = export_to_folder(
                &storage,
                options,
                ExportKey::from_bytes([7; KEY_BYTES]),
                &out,
                &ExportActor::Admin {
                    user: "test".into(),
                },
                &mut (),
            )
            .await
            .unwrap();
            assert_eq!(summary.patients, 1, "{format}");
        }
    }
}
