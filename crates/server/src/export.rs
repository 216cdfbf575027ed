//! The server side of the analyst export: the export key, reading consenting patients from
//! storage one at a time into the pure `heeldiary-export` writers, writing a folder that
//! appears whole or not at all, and the export log. Used by `heeldiary-server export` and by
//! `GET /v1/export`; backend-neutral, it knows only [`Storage`].

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use heeldiary_export::{
    EntryRecord, ExportError as WriteError, ExportKey, Exporter, OutputFiles, PreparedPatient,
    Summary, KEY_BYTES,
};
use rand::RngCore;
use uuid::Uuid;

use crate::storage::{
    AccessRecord, ExportEntry, ExportRecord, Storage, StorageError, ADMINISTRATOR_ID,
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

/// Streams one patient's stored entries into `exporter`, a page at a time in id order. The
/// next page is read (on the storage's own thread) while this one is written, so reading and
/// writing run side by side. Returns whether the patient contributed a row.
pub async fn export_patient<S: Storage>(
    storage: &S,
    exporter: &mut Exporter,
    patient_id: Uuid,
) -> Result<bool, ExportFailure> {
    let first_day = storage.first_entry_day(patient_id).await?;
    exporter.start_patient(patient_id, first_day)?;
    let mut page = storage
        .export_entries(patient_id, None, EXPORT_PAGE)
        .await?;
    loop {
        let after = page.last().map(|e| e.entry_id);
        let more = page.len() == EXPORT_PAGE as usize;
        let next = async {
            match after.filter(|_| more) {
                Some(after) => storage
                    .export_entries(patient_id, Some(after), EXPORT_PAGE)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let write = async {
            for stored in page {
                exporter.add_entry(entry_record(stored))?;
            }
            Ok::<(), WriteError>(())
        };
        let (next, written) = tokio::join!(next, write);
        written?;
        match next? {
            Some(next) => page = next,
            None => break,
        }
    }
    Ok(exporter.finish_patient()?)
}

/// One patient's stored entries made ready for export, read page by page.
pub async fn prepare_patient<S: Storage>(
    storage: &S,
    patient_id: Uuid,
    options: &Options,
) -> Result<PreparedPatient, StorageError> {
    let mut records = Vec::new();
    let mut after = None;
    loop {
        let page = storage
            .export_entries(patient_id, after, EXPORT_PAGE)
            .await?;
        let more = page.len() == EXPORT_PAGE as usize;
        after = page.last().map(|e| e.entry_id);
        records.extend(page.into_iter().map(entry_record));
        if !more {
            return Ok(PreparedPatient::from_records(patient_id, records, options));
        }
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
    progress: &mut dyn Progress,
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

async fn write_folder<S: Storage>(
    storage: &S,
    options: &Options,
    key: ExportKey,
    temp: &Path,
    progress: &mut dyn Progress,
) -> Result<(Summary, Vec<Uuid>), ExportFailure> {
    let mut files = FolderFiles {
        root: temp.to_owned(),
    };
    let mut exporter = Exporter::new(options.clone(), key, &mut files)?;
    let patients = storage.consenting_patients().await?;
    progress.start(patients.len() as u64);
    let mut exported = Vec::new();
    for patient_id in patients {
        if export_patient(storage, &mut exporter, patient_id).await? {
            exported.push(patient_id);
        }
        progress.advance();
    }
    Ok((exporter.finish(&mut files)?, exported))
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
