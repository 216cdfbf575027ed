//! Storage behind the server: one trait that every backend implements, and the values it
//! exchanges. Handlers only ever see [`Storage`], so backends ([`SqliteStorage`],
//! [`PostgresStorage`]) come and go without touching them. `conformance` is the test suite every
//! backend must pass; like the PostgreSQL scratch schemas it is built only for tests and with the
//! `test-support` feature, never into the server a clinic runs.
//!
//! Every table is keyed by `patient_id` first and no method reads across patients (except
//! [`Storage::enrol`], which checks that a device id is not enrolled twice), so a backend can
//! partition by patient.
//!
//! What a push decides (which operations are new, which cursor each gets, the merged entry
//! states) does not depend on the database and lives here, in `PushPlan`, shared by backends.

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
pub mod postgres;
pub mod providers;
pub mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use heeldiary_core::wire::{PulledOp, PushResult, PushStatus};
use heeldiary_core::{EntryState, Hlc, Op};
use uuid::Uuid;

use crate::secrets::SecretHash;

pub use postgres::{PoolOptions, PostgresStorage, POSTGRES_SCHEMA_VERSION};
#[cfg(any(test, feature = "test-support"))]
pub use postgres::{ScratchSchema, TEST_DATABASE_URL};
pub use providers::{
    Access, AccessRecord, BreakGlass, NewProvider, ProviderInfo, ProviderLogin, ProviderPatient,
    ProviderStorage, ShareInfo, ADMINISTRATOR_ID,
};
pub use sqlite::SqliteStorage;

/// What a storage backend can fail with. Messages carry no personal data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The patient or device does not exist.
    #[error("not found")]
    NotFound,
    /// The enrolment code is unknown, used or expired.
    #[error("unknown, used or expired enrolment code")]
    InvalidCode,
    /// The write collides with something that exists (a device id enrolled already).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend cannot serve now (locked, connection lost); retrying later may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The database was written by a newer server; it is left untouched.
    #[error(
        "the database has schema version {found}, newer than this server supports ({supported}): \
         upgrade heeldiary-server"
    )]
    NewerSchema {
        /// Version found in the database.
        found: u32,
        /// Newest version this server knows.
        supported: u32,
    },
    /// An operation reuses the sequence number of a different stored one: the same device id
    /// writes from two diaries (a copied or restored file). Nothing of the batch is written.
    #[error("ops[{index}].device_seq: sequence {device_seq} of this device holds a different operation already")]
    SequenceReused {
        /// Position of the operation in the batch.
        index: usize,
        /// The reused sequence number.
        device_seq: u64,
    },
    /// A push was to follow an operation that is not stored, or is stored with another stamp
    /// (see [`Storage::push_after`]). Nothing of the batch is written.
    #[error("the operation with sequence {device_seq} of this device, which this batch must follow, is not stored")]
    OutOfOrder {
        /// The sequence number the batch was to follow.
        device_seq: u64,
    },
    /// A fault in the backend or in stored data.
    #[error("storage fault: {0}")]
    Internal(String),
}

/// What a device token may do. Providers sign in apart (see [`providers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// A patient's own device: pushes and pulls that patient's operations.
    Device,
}

impl Role {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Device => "device",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, StorageError> {
        match s {
            "device" => Ok(Role::Device),
            other => Err(StorageError::Internal(format!("unknown role `{other}`"))),
        }
    }
}

/// A patient to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPatient {
    /// Its id.
    pub patient_id: Uuid,
    /// A label for the clinic (not shown to devices).
    pub label: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// An enrolment code to store; only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCode {
    /// sha256 of the normalised code.
    pub code_hash: SecretHash,
    /// The patient a device enrolled with it will write for.
    pub patient_id: Uuid,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// After this instant it no longer works.
    pub expires_at: DateTime<Utc>,
}

/// A device to register when its enrolment code is consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// The id the device made for itself.
    pub device_id: Uuid,
    /// sha256 of the secret part of its token.
    pub token_hash: SecretHash,
    /// What the token may do.
    pub role: Role,
    /// Optional name ("phone").
    pub label: Option<String>,
}

/// What authentication needs to know about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCredentials {
    /// sha256 of the token secret.
    pub token_hash: SecretHash,
    /// What the token may do.
    pub role: Role,
    /// Whether the device was revoked.
    pub revoked: bool,
    /// The feed's epoch, read with the device: what the device's push or pull is answered
    /// with, without a second read.
    pub epoch: Uuid,
}

/// A device as the clinic sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// The device id.
    pub device_id: Uuid,
    /// What its token may do.
    pub role: Role,
    /// Its name, if it gave one.
    pub label: Option<String>,
    /// When it enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One page of a patient's operation feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullPage {
    /// Operations in cursor order.
    pub ops: Vec<PulledOp>,
    /// The cursor to ask after next: the last operation's, or past operations left out after it
    /// (see [`HeldOwnOps`]), or the request's when there was nothing after it.
    pub next_cursor: u64,
    /// Whether more operations follow `next_cursor`.
    pub has_more: bool,
}

/// Operations the pulling device holds already, exactly as the server does, and need not be
/// sent back to it: those it wrote itself with a sequence number up to `through_seq` (the
/// server acknowledged them to it, and an acknowledgement means the server holds that very
/// operation under that sequence number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldOwnOps {
    /// The pulling device.
    pub device_id: Uuid,
    /// Its highest sequence number whose operations it holds as the server does.
    pub through_seq: u64,
}

/// The operation of the pushing device that must be stored before a batch is (see
/// [`Storage::push_after`]): a batch sent before the one ahead of it was answered is stored
/// only after that one, and never after a refusal made the device re-stamp it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushAfter {
    /// The pushing device.
    pub device_id: Uuid,
    /// The sequence number of the operation.
    pub device_seq: u64,
    /// Its stamp: the operation stored under that number must carry this one.
    pub hlc: Hlc,
}

impl PushAfter {
    /// Whether `stored`, the identities a push found, hold the operation with its stamp.
    pub(crate) fn is_met(&self, stored: &StoredIdentities) -> Result<(), StorageError> {
        let key = (self.device_id, to_i64(self.device_seq, "after_seq")?);
        match stored.get(&key) {
            Some((_, hlc)) if parse_hlc(hlc)? == self.hlc => Ok(()),
            _ => Err(StorageError::OutOfOrder {
                device_seq: self.device_seq,
            }),
        }
    }
}

/// The materialized state of one entry and one page of its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Merged field values.
    pub state: EntryState,
    /// The operations on the entry after the requested cursor, in cursor order.
    pub ops: Vec<PulledOp>,
    /// Whether more operations of the entry follow the last one.
    pub has_more: bool,
}

/// What an erasure removed: left behind as its record, with no personal data in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErasureRecord {
    /// The record's id.
    pub erasure_id: Uuid,
    /// The erased patient (a random id; the label is gone with the patient row).
    pub patient_id: Uuid,
    /// When it happened.
    pub erased_at: DateTime<Utc>,
    /// Who ran it (an operator name, as given to the admin command).
    pub erased_by: String,
    /// Rows removed, per table.
    pub rows_removed: BTreeMap<String, u64>,
}

/// Whether a table holds a patient's data that an erasure removes: every table with a
/// `patient_id` column except the erasure records themselves and access audit logs, which are
/// the record of who saw what and hold ids, never health data.
pub(crate) fn erasable_table(name: &str) -> bool {
    !(name.contains("erasure") || name.contains("audit") || name.contains("access_log"))
}

/// A patient's answer to research use of the diary, as the device recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResearchConsent {
    /// The patient.
    pub patient_id: Uuid,
    /// The device that carried the answer.
    pub device_id: Uuid,
    /// Yes or no.
    pub consent: bool,
    /// When the patient answered (device clock).
    pub changed_at: DateTime<Utc>,
    /// When the server received it.
    pub received_at: DateTime<Utc>,
}

/// An analyst account to create; only the hash of its token is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAnalyst {
    /// Its id.
    pub analyst_id: Uuid,
    /// A name for the log ("Study 1").
    pub name: String,
    /// sha256 of the token secret.
    pub token_hash: SecretHash,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What authentication needs to know about an analyst.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalystCredentials {
    /// sha256 of the token secret.
    pub token_hash: SecretHash,
    /// The analyst's name.
    pub name: String,
    /// Whether the token was revoked.
    pub revoked: bool,
}

/// One line of the export log: who exported what, when, how much. Holds no patient id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportRecord {
    /// Its id.
    pub export_id: Uuid,
    /// When the export ran.
    pub exported_at: DateTime<Utc>,
    /// `analyst:<id>` or `admin:<user>`.
    pub actor: String,
    /// `http` or `cli`.
    pub via: String,
    /// The format.
    pub format: String,
    /// Whether ids, dates and notes were kept.
    pub identified: bool,
    /// The options, as JSON.
    pub options: serde_json::Value,
    /// Patients exported.
    pub patients: u64,
    /// Rows per table, as JSON.
    pub row_counts: serde_json::Value,
}

/// One stored entry of a patient as the analyst export reads it: the merged state the server
/// keeps, and the entry's operations only when there is more than one (what its edit count and
/// conflict flag are computed from; an entry made by one operation has neither).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportEntry {
    /// The entry.
    pub entry_id: Uuid,
    /// The local day it describes, once known.
    pub day: Option<chrono::NaiveDate>,
    /// Whether a tombstone won.
    pub deleted: bool,
    /// The merged field values as stored, the text of [`EntryState::to_stored`] (empty for a
    /// deleted entry): the export decodes it straight into the entry it writes.
    pub state: String,
    /// When the server last received a change to it.
    pub updated_at: DateTime<Utc>,
    /// Its operations in cursor order when it has more than one; empty otherwise.
    pub ops: Vec<PulledOp>,
}

/// Pages of [`ExportPages`] in flight: read ahead of the export, beside the one it
/// holds. Enough to keep reading and writing busy together, few enough that memory holds a few
/// pages whatever the size of the diary.
const PAGES_IN_FLIGHT: usize = 2;

/// What the reading task of [`ExportPages`] hands over.
enum PageItem {
    Page(Vec<ExportEntry>),
    /// The last entries, sent once the read is over: with the end, so that a diary of less
    /// than a page is handed over in one step.
    End(Vec<ExportEntry>),
    Failed(StorageError),
}

/// One patient's stored entries, read page by page from one snapshot by a task of the backend
/// (see [`Storage::export_entries_by_day`]). The task reads a few pages ahead of the caller and
/// stops when this is dropped.
#[derive(Debug)]
pub struct ExportPages {
    pages: tokio::sync::mpsc::Receiver<PageItem>,
    ended: bool,
}

impl ExportPages {
    /// A reading end and the sending half a backend's task fills.
    pub(crate) fn channel() -> (PageSender, ExportPages) {
        let (sender, pages) = tokio::sync::mpsc::channel(PAGES_IN_FLIGHT);
        (
            PageSender { sender },
            ExportPages {
                pages,
                ended: false,
            },
        )
    }

    /// The next page (never empty), or `None` after the last.
    ///
    /// # Failure
    /// The error the reading task met; [`StorageError::Internal`] when the task stopped
    /// without saying it was done, so that a cut read is never taken for a whole one.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ExportEntry>>, StorageError> {
        if self.ended {
            return Ok(None);
        }
        loop {
            match self.pages.recv().await {
                Some(PageItem::Page(page)) if page.is_empty() => continue,
                Some(PageItem::Page(page)) => return Ok(Some(page)),
                Some(PageItem::End(last)) => {
                    self.ended = true;
                    return Ok(Some(last).filter(|last| !last.is_empty()));
                }
                Some(PageItem::Failed(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                None => {
                    self.ended = true;
                    return Err(StorageError::Internal(
                        "the export's reading task stopped before the end".into(),
                    ));
                }
            }
        }
    }
}

/// The sending half of [`ExportPages`], held by a backend's reading task.
pub(crate) struct PageSender {
    sender: tokio::sync::mpsc::Sender<PageItem>,
}

impl PageSender {
    /// Hands over a page, waiting while the reader is a few pages behind. `false` when the
    /// reader is gone: the task should stop reading.
    pub(crate) async fn send(&self, page: Vec<ExportEntry>) -> bool {
        self.sender.send(PageItem::Page(page)).await.is_ok()
    }

    /// [`send`](Self::send) from a blocking thread.
    pub(crate) fn blocking_send(&self, page: Vec<ExportEntry>) -> bool {
        self.sender.blocking_send(PageItem::Page(page)).is_ok()
    }

    /// Says that every page was sent, with the last entries read (those of no full page), or
    /// why reading stopped.
    pub(crate) async fn end(self, read: Result<Vec<ExportEntry>, StorageError>) {
        let _ = self.sender.send(Self::last(read)).await;
    }

    /// [`end`](Self::end) from a blocking thread.
    pub(crate) fn blocking_end(self, read: Result<Vec<ExportEntry>, StorageError>) {
        let _ = self.sender.blocking_send(Self::last(read));
    }

    fn last(read: Result<Vec<ExportEntry>, StorageError>) -> PageItem {
        match read {
            Ok(last) => PageItem::End(last),
            Err(e) => PageItem::Failed(e),
        }
    }
}

/// The server's storage. Every method is one atomic unit: it either happens whole or not at all.
///
/// Implementations are cheap to clone (a handle to a pool or connection) and shared by all
/// requests.
pub trait Storage: ProviderStorage + Clone + Send + Sync + 'static {
    /// Creates a patient with an empty feed.
    ///
    /// # Failure
    /// [`StorageError::Conflict`] if the id exists.
    fn create_patient(
        &self,
        patient: NewPatient,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Stores an enrolment code for an existing patient.
    ///
    /// # Failure
    /// [`StorageError::NotFound`] if the patient does not exist.
    fn issue_code(&self, code: NewCode) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Consumes the code with hash `code_hash` and registers `device` for its patient, in one
    /// transaction; returns the patient id.
    ///
    /// # Failure
    /// [`StorageError::InvalidCode`] if the code is unknown, used, or expired at `now`;
    /// [`StorageError::Conflict`] if the device id is enrolled already (for any patient), in
    /// which case the code stays unused.
    fn enrol(
        &self,
        code_hash: SecretHash,
        device: NewDevice,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Uuid, StorageError>> + Send;

    /// The credentials of a device, or `None` if the patient has no such device.
    fn authenticate(
        &self,
        patient_id: Uuid,
        device_id: Uuid,
    ) -> impl Future<Output = Result<Option<DeviceCredentials>, StorageError>> + Send;

    /// Revokes a device's token from `now` on. Revoking twice keeps the first time.
    ///
    /// # Failure
    /// [`StorageError::NotFound`] if the patient has no such device.
    fn revoke_device(
        &self,
        patient_id: Uuid,
        device_id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The devices of a patient, in enrolment order.
    ///
    /// # Failure
    /// [`StorageError::NotFound`] if the patient does not exist.
    fn list_devices(
        &self,
        patient_id: Uuid,
    ) -> impl Future<Output = Result<Vec<DeviceInfo>, StorageError>> + Send;

    /// Stores a validated batch in one transaction. An operation whose `(device_id, device_seq)`
    /// the patient already has is a duplicate (its stored body is kept, even if the new one
    /// differs); every other one gets the patient's next cursor, `received_at`, and is merged
    /// into its entry's materialized state. Results come in request order.
    ///
    /// Cursors of one patient increase strictly in commit order: a reader that has seen cursor
    /// `n` committed has seen every cursor below it. (Take the patient's counter row with a write
    /// lock for the whole transaction, e.g. `UPDATE patients … RETURNING last_cursor`, so that
    /// two pushes of one patient serialize.)
    ///
    /// Sequence numbers and cursors are stored as signed 64-bit integers; the handlers refuse
    /// larger `device_seq` values before they get here.
    ///
    /// # Failure
    /// [`StorageError::NotFound`] if the patient does not exist; an error for a value that does
    /// not fit. On any error nothing is written.
    fn push(
        &self,
        patient_id: Uuid,
        ops: Vec<Op>,
        received_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<PushResult>, StorageError>> + Send {
        self.push_after(patient_id, None, ops, received_at)
    }

    /// Whether pushes are stored in the order their futures were first polled: a push polled
    /// once is queued ahead of every push polled after it, so one that must follow it (see
    /// [`push_after`](Self::push_after)) may be handed over at once instead of waiting for its
    /// answer. `false` unless a backend says so.
    fn queues_pushes_when_polled(&self) -> bool {
        false
    }

    /// [`push`](Self::push), when `after` is given only if the patient holds that operation of
    /// the pushing device with that stamp, checked under the same lock as the rest of the push.
    ///
    /// # Failure
    /// [`StorageError::OutOfOrder`] when it does not, and nothing is written; otherwise as
    /// [`push`](Self::push).
    fn push_after(
        &self,
        patient_id: Uuid,
        after: Option<PushAfter>,
        ops: Vec<Op>,
        received_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<PushResult>, StorageError>> + Send;

    /// Up to `limit` operations of the patient with a cursor above `after`, in cursor order.
    fn pull(
        &self,
        patient_id: Uuid,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<PullPage, StorageError>> + Send {
        self.pull_leaving_out(patient_id, after, limit, None)
    }

    /// Like [`pull`](Self::pull), but the operations in `held` are left out: the page's
    /// `next_cursor` moves past them, so a page may hold fewer than `limit` operations, or none,
    /// and still say that more follow.
    fn pull_leaving_out(
        &self,
        patient_id: Uuid,
        after: u64,
        limit: u32,
        held: Option<HeldOwnOps>,
    ) -> impl Future<Output = Result<PullPage, StorageError>> + Send;

    /// One entry of the patient with up to `limit` of its operations after cursor `after`, or
    /// `None` if the patient has no operation on it.
    fn entry(
        &self,
        patient_id: Uuid,
        entry_id: Uuid,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Option<StoredEntry>, StorageError>> + Send;

    /// Records a patient's research consent. An answer given earlier (by `changed_at`) than the
    /// one stored is ignored, so answers may arrive in any order.
    ///
    /// # Failure
    /// [`StorageError::NotFound`] if the patient does not exist.
    fn set_research_consent(
        &self,
        consent: ResearchConsent,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The patients whose latest research answer is yes, in id order. The one read across
    /// patients besides enrolment; only exports use it.
    fn consenting_patients(&self) -> impl Future<Output = Result<Vec<Uuid>, StorageError>> + Send;

    /// Creates an analyst account.
    ///
    /// # Failure
    /// [`StorageError::Conflict`] if the id exists.
    fn add_analyst(
        &self,
        analyst: NewAnalyst,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The credentials of an analyst, or `None` if there is no such analyst.
    fn analyst_credentials(
        &self,
        analyst_id: Uuid,
    ) -> impl Future<Output = Result<Option<AnalystCredentials>, StorageError>> + Send;

    /// Revokes an analyst's token from `now` on. Revoking twice keeps the first time.
    ///
    /// # Failure
    /// [`StorageError::NotFound`] if there is no such analyst.
    fn revoke_analyst(
        &self,
        analyst_id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Up to `limit` stored entries of the patient (deleted ones included) with an id above
    /// `after` (from the first when `None`), in id order: the analyst export reads a patient's
    /// diary page by page through this, so memory holds one page whatever the diary's size.
    fn export_entries(
        &self,
        patient_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ExportEntry>, StorageError>> + Send;

    /// The patient's stored entries that an export kept in time order (MEDS, FHIR) reads:
    /// first the deleted entries that have no day (what an incremental export counts as
    /// deletions), by id; then every entry with a day (deleted ones included), by day then id;
    /// without their operations, in pages of up to `page` entries (at least one).
    ///
    /// All pages come from one snapshot, so an entry whose day is edited while they are read is
    /// listed once with the day it had, not twice or never, and memory holds a few pages
    /// whatever the size of the diary: a task of the backend reads ahead of the caller, and
    /// stops when the returned [`ExportPages`] is dropped. An entry whose day has not arrived
    /// yet and that is not deleted is not listed.
    fn export_entries_by_day(
        &self,
        patient_id: Uuid,
        page: u32,
    ) -> impl Future<Output = Result<ExportPages, StorageError>> + Send;

    /// The day of the patient's first live entry (study day 0 of an export), or `None`.
    fn first_entry_day(
        &self,
        patient_id: Uuid,
    ) -> impl Future<Output = Result<Option<chrono::NaiveDate>, StorageError>> + Send;

    /// Adds one line per exported patient to the access log the patient reads (who exported,
    /// when, what), all in one transaction.
    fn record_export_access(
        &self,
        records: Vec<AccessRecord>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Adds a line to the export log.
    fn record_export(
        &self,
        record: ExportRecord,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The last `limit` lines of the export log, newest first.
    fn export_log(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ExportRecord>, StorageError>> + Send;

    /// Whether the backend answers.
    fn health(&self) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The feed's epoch: minted when the data was created and again by
    /// [`mark_restored`](Self::mark_restored).
    fn epoch(&self) -> impl Future<Output = Result<Uuid, StorageError>> + Send;

    /// Declares the data restored from a backup: mints and returns a new epoch, so that every
    /// device pushes again what the restore lost and reads the feed again from the start.
    fn mark_restored(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Uuid, StorageError>> + Send;

    /// Creates a patient and its first enrolment code in one transaction: either both exist
    /// afterwards or neither does.
    ///
    /// # Failure
    /// [`StorageError::Conflict`] if the patient id exists.
    fn create_patient_with_code(
        &self,
        patient: NewPatient,
        code: NewCode,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Registers another device of an existing patient, asked for by one of its enrolled
    /// devices (a copied diary taking a new identity). Asking again with the same device id and
    /// token hash (a lost answer) succeeds again and changes nothing.
    ///
    /// # Failure
    /// [`StorageError::NotFound`] if the patient does not exist; [`StorageError::Conflict`] if
    /// the device id is enrolled already with another token or for another patient.
    fn add_device(
        &self,
        patient_id: Uuid,
        device: NewDevice,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Removes every row of the patient (operations, entries, devices, codes and the patient)
    /// in one transaction and leaves an [`ErasureRecord`].
    ///
    /// # Failure
    /// [`StorageError::NotFound`] if the patient does not exist.
    fn erase_patient(
        &self,
        patient_id: Uuid,
        erased_by: String,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<ErasureRecord, StorageError>> + Send;

    /// When the patient was erased, if it was.
    fn erased_at(
        &self,
        patient_id: Uuid,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StorageError>> + Send;
}

/// What identifies a stored operation, by (device id, device sequence): its entry and the text
/// of its stamp. Enough to tell a repeat delivery from a different operation.
pub(crate) type StoredIdentities = HashMap<(Uuid, i64), (Uuid, String)>;

/// What one push does, decided from the `(device_id, device_seq)` keys the patient already
/// stores. Backends find those keys and write the outcome; the decisions are made here once.
#[derive(Debug)]
pub(crate) struct PushPlan<'a> {
    /// One result per pushed operation, in request order.
    pub results: Vec<PushResult>,
    /// The operations to store, each with its new cursor, in cursor order.
    pub applied: Vec<(i64, &'a Op)>,
}

impl<'a> PushPlan<'a> {
    /// Plans `ops` for a patient whose feed ends at `last_cursor` and who stores `stored`
    /// already. A repeat (stored, or earlier in the batch) is a duplicate when it is the same
    /// operation: same entry and stamp.
    ///
    /// # Failure
    /// [`StorageError::SequenceReused`] when a sequence number holds a different operation;
    /// [`StorageError::Internal`] if a sequence number or cursor does not fit in storage.
    pub fn new(
        ops: &'a [Op],
        last_cursor: i64,
        stored: &StoredIdentities,
    ) -> Result<Self, StorageError> {
        let mut seen: HashMap<(Uuid, i64), &Op> = HashMap::with_capacity(ops.len());
        let mut cursor = last_cursor;
        let mut results = Vec::with_capacity(ops.len());
        let mut applied = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            let key = (op.device_id, to_i64(op.device_seq, "device_seq")?);
            let earlier = stored
                .get(&key)
                .map(|(entry_id, hlc)| (*entry_id, hlc.clone()))
                .or_else(|| {
                    seen.get(&key)
                        .map(|first| (first.entry_id, first.hlc.to_string()))
                });
            let status = match earlier {
                Some((entry_id, hlc)) if entry_id == op.entry_id && hlc == op.hlc.to_string() => {
                    PushStatus::Duplicate
                }
                Some(_) => {
                    return Err(StorageError::SequenceReused {
                        index,
                        device_seq: op.device_seq,
                    })
                }
                None => {
                    seen.insert(key, op);
                    cursor = cursor
                        .checked_add(1)
                        .ok_or_else(|| StorageError::Internal("cursor exceeds storage".into()))?;
                    applied.push((cursor, op));
                    PushStatus::Applied
                }
            };
            results.push(PushResult {
                device_seq: op.device_seq,
                status,
            });
        }
        Ok(Self { results, applied })
    }

    /// The cursor of the last stored operation, or `None` when nothing is new.
    pub fn last_cursor(&self) -> Option<i64> {
        self.applied.last().map(|(cursor, _)| *cursor)
    }

    /// The entries the new operations touch, without repeats.
    pub fn entry_ids(&self) -> Vec<Uuid> {
        let ids: std::collections::BTreeSet<Uuid> =
            self.applied.iter().map(|(_, op)| op.entry_id).collect();
        ids.into_iter().collect()
    }

    /// Folds the new operations into their entries' stored states (`stored` holds those that
    /// exist; a missing one starts empty) and returns the states to save.
    pub fn merge(&self, mut stored: BTreeMap<Uuid, EntryState>) -> BTreeMap<Uuid, EntryState> {
        let mut merged = BTreeMap::new();
        for (_, op) in &self.applied {
            merged
                .entry(op.entry_id)
                .or_insert_with(|| stored.remove(&op.entry_id).unwrap_or_default())
                .apply(op);
        }
        merged
    }
}

/// `n` as a signed 64-bit integer, the width both backends store.
pub(crate) fn to_i64(n: u64, what: &str) -> Result<i64, StorageError> {
    i64::try_from(n).map_err(|_| StorageError::Internal(format!("{what} {n} exceeds storage")))
}

/// A write that was meant to match a record: none matched (zero rows changed) means there is no
/// such record, which the caller answers as not found.
pub(crate) fn some_row<N: PartialEq + Default>(changed: N) -> Result<(), StorageError> {
    if changed == N::default() {
        Err(StorageError::NotFound)
    } else {
        Ok(())
    }
}

/// A stored sequence number or cursor back as unsigned; a negative one is a fault in the data.
pub(crate) fn from_i64(n: i64) -> Result<u64, StorageError> {
    u64::try_from(n).map_err(|_| StorageError::Internal(format!("stored number {n} < 0")))
}

/// A stored hash back from its bytes.
pub(crate) fn hash_from_bytes(bytes: Vec<u8>) -> Result<SecretHash, StorageError> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StorageError::Internal("stored hash has the wrong length".into()))?;
    Ok(SecretHash::from_bytes(bytes))
}

/// A stored operation stamp back from its text.
pub(crate) fn parse_hlc(text: &str) -> Result<heeldiary_core::Hlc, StorageError> {
    text.parse()
        .map_err(|e| StorageError::Internal(format!("stored stamp unreadable: {e}")))
}

/// The feed query of [`Storage::pull_leaving_out`] with the backend's parameter sign (`?` or
/// `$`): patient (1), cursor after (2), pulling device (3), its held sequence bound (4) and row
/// limit (5). It reads the operations not held, and the patient's last operation even when it
/// is held: its cursor ends the feed. One statement reads both, so the end it finds is the end
/// of what it read.
pub(crate) fn feed_query(sign: char) -> String {
    format!(
        "SELECT {FEED_COLUMNS} FROM ops WHERE patient_id = {sign}1 AND cursor > {sign}2
           AND (device_id <> {sign}3 OR device_seq > {sign}4
                OR cursor = (SELECT max(cursor) FROM ops WHERE patient_id = {sign}1))
         ORDER BY cursor LIMIT {sign}5"
    )
}

/// The pulling device and sequence bound a feed query binds for `held`; with nothing held, a
/// bound below every sequence number.
pub(crate) fn held_bounds(held: Option<HeldOwnOps>) -> Result<(Uuid, i64), StorageError> {
    match held {
        Some(held) => Ok((held.device_id, to_i64(held.through_seq, "sequence number")?)),
        None => Ok((Uuid::nil(), -1)),
    }
}

/// The page of a feed query's rows (cursor order, at most `limit + 1` operations not held, then
/// possibly the patient's last operation although it is held).
pub(crate) fn feed_page(
    rows: Vec<PulledOp>,
    after: u64,
    limit: u32,
    held: Option<HeldOwnOps>,
) -> PullPage {
    let is_held = |pulled: &PulledOp| {
        held.is_some_and(|held| {
            pulled.op.device_id == held.device_id && pulled.op.device_seq <= held.through_seq
        })
    };
    let mut page = PullPage {
        ops: Vec::with_capacity(rows.len().min(limit as usize)),
        next_cursor: after,
        has_more: false,
    };
    for pulled in rows {
        if is_held(&pulled) {
            page.next_cursor = pulled.cursor;
        } else if page.ops.len() == limit as usize {
            page.has_more = true;
            break;
        } else {
            page.next_cursor = pulled.cursor;
            page.ops.push(pulled);
        }
    }
    page
}

/// The columns of an operation in a patient's feed (`ops` table, same names in every backend), in
/// the order each backend's row codec reads them into a [`PulledOp`].
pub(crate) const FEED_COLUMNS: &str =
    "cursor, device_id, device_seq, entry_id, hlc, patch, received_at";

/// How long after its first use a code can be presented again by the same device.
pub const ENROL_REPEAT_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

/// What an enrolment code allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeUse {
    /// Unused and unexpired: enrol the device.
    First,
    /// Used moments ago by this very device, which asks again: its first answer was lost. The
    /// backend answers again if the device proves it is the first caller (same token secret).
    Repeat,
    /// Expired, used by another device, or used too long ago.
    Refuse,
}

/// What a code with this history allows the device `device_id` at `now`. A repeat does not
/// depend on the expiry: a device that enrolled a moment before it must still get its answer.
pub(crate) fn code_use(
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    used_by: Option<&str>,
    device_id: &str,
    now: DateTime<Utc>,
) -> CodeUse {
    match (used_at, used_by) {
        (None, _) if now < expires_at => CodeUse::First,
        (Some(at), Some(by))
            if by.eq_ignore_ascii_case(device_id) && now - at <= ENROL_REPEAT_WINDOW =>
        {
            CodeUse::Repeat
        }
        _ => CodeUse::Refuse,
    }
}

/// The message every backend gives when a device id is enrolled already.
pub(crate) fn device_id_taken() -> StorageError {
    StorageError::Conflict(
        "this device id is enrolled already, and the secret does not prove this is that \
         device; enrol with a new device id"
            .into(),
    )
}

/// One schema migration of a backend: a numbered SQL file of its `schema/server-*/` folder.
pub(crate) struct Migration {
    /// Its number, from 1 without gaps.
    pub version: u32,
    /// The file name without `.sql`.
    pub name: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// The migrations of one backend's folder in `schema/`, `version => "file name without .sql"`,
/// in order: `migrations!("server-sqlite": 1 => "0001_init", 2 => "0002_code_used_by")`.
macro_rules! migrations {
    ($folder:literal: $($version:literal => $name:literal),+ $(,)?) => {
        &[$($crate::storage::Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"), "/../../schema/", $folder, "/", $name, ".sql"
            )),
        }),+]
    };
}
pub(crate) use migrations;

/// The migrations a database at schema version `current` lacks, in order.
///
/// # Failure
/// [`StorageError::NewerSchema`] if the database is newer than the last of `migrations`.
pub(crate) fn pending(
    migrations: &[Migration],
    current: u32,
) -> Result<impl Iterator<Item = &Migration>, StorageError> {
    let supported = migrations.last().map_or(0, |m| m.version);
    if current > supported {
        return Err(StorageError::NewerSchema {
            found: current,
            supported,
        });
    }
    Ok(migrations.iter().filter(move |m| m.version > current))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_entry() -> ExportEntry {
        ExportEntry {
            entry_id: Uuid::now_v7(),
            day: None,
            deleted: true,
            state: String::new(),
            updated_at: Utc::now(),
            ops: Vec::new(),
        }
    }

    /// A reading task that stops without saying it is done (it panicked, or was cut short)
    /// fails the read: a cut diary is never taken for a whole one.
    #[tokio::test]
    async fn export_pages_cut_short_fail_instead_of_ending() {
        let (sender, mut pages) = ExportPages::channel();
        assert!(sender.send(vec![stored_entry()]).await);
        drop(sender);
        assert_eq!(pages.next_page().await.unwrap().map(|p| p.len()), Some(1));
        assert!(matches!(
            pages.next_page().await,
            Err(StorageError::Internal(_))
        ));

        // Empty pages are skipped; the last entries come with the end.
        let (sender, mut pages) = ExportPages::channel();
        assert!(sender.send(Vec::new()).await);
        sender.end(Ok(vec![stored_entry()])).await;
        assert_eq!(pages.next_page().await.unwrap().map(|p| p.len()), Some(1));
        assert_eq!(pages.next_page().await.unwrap(), None);

        let (sender, mut pages) = ExportPages::channel();
        sender.end(Ok(Vec::new())).await;
        assert_eq!(pages.next_page().await.unwrap(), None);
    }

    /// Once the caller drops its pages, the reading task learns it at its next page and stops.
    #[tokio::test]
    async fn a_reading_task_learns_that_its_pages_were_dropped() {
        let (sender, pages) = ExportPages::channel();
        drop(pages);
        assert!(!sender.send(vec![stored_entry()]).await);
    }

    #[test]
    fn migrations_are_numbered_in_order_from_one() {
        for migrations in [sqlite::MIGRATIONS, postgres::MIGRATIONS] {
            for (i, m) in migrations.iter().enumerate() {
                assert_eq!(m.version as usize, i + 1);
                assert!(m.name.starts_with(&format!("{:04}_", m.version)));
            }
        }
    }
}
