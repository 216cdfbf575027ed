//! What storage keeps for provider review: provider accounts, their sign-in sessions and API
//! tokens, the shares patients grant, break-glass grants, and the append-only access log.
//!
//! Unlike the patient tables, some of these are read by provider (which patients share with me),
//! so [`ProviderStorage`] has methods that cross patients; each still reads only the rows of one
//! provider or one patient. Secrets are kept as hashes only: share codes, setup links, sessions
//! and API tokens as sha256 ([`SecretHash`]), passwords as argon2id strings made by the caller.

use std::future::Future;

use chrono::{DateTime, Utc};
use heeldiary_core::EntryState;
use serde::Serialize;
use uuid::Uuid;

use super::StorageError;
use crate::secrets::SecretHash;

/// A provider account to create. It has no password until the setup link is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProvider {
    /// Its id.
    pub provider_id: Uuid,
    /// The name patients see ("Dr Alpha").
    pub name: String,
    /// The sign-in email, lowercased.
    pub email: String,
    /// sha256 of the normalised share code.
    pub share_code_hash: SecretHash,
    /// sha256 of the single-use setup token.
    pub setup_hash: SecretHash,
    /// After this instant the setup link no longer works.
    pub setup_expires_at: DateTime<Utc>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A provider as the clinic sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderInfo {
    /// Its id.
    pub provider_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its sign-in email.
    pub email: String,
    /// Whether a password was chosen at the setup link.
    pub has_password: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was disabled, if it was.
    pub disabled_at: Option<DateTime<Utc>>,
}

/// What sign-in needs to know about the provider with a given email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderLogin {
    /// Its id.
    pub provider_id: Uuid,
    /// The argon2id hash string, once a password was chosen.
    pub password_hash: Option<String>,
    /// Whether the account was disabled.
    pub disabled: bool,
}

/// A provider a patient shares the diary with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ShareInfo {
    /// The provider's id.
    pub provider_id: Uuid,
    /// The provider's name.
    pub name: String,
    /// When the share was granted.
    pub since: DateTime<Utc>,
}

/// Why a provider may read a patient's diary now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// The patient shares the diary with the provider.
    Share,
    /// A time-limited break-glass grant, without a share.
    BreakGlass,
}

/// A patient a provider may read, with the label the clinic gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPatient {
    /// The patient.
    pub patient_id: Uuid,
    /// The clinic's label.
    pub label: Option<String>,
    /// Why the provider may read it.
    pub access: Access,
}

/// A time-limited access without a share, granted by the clinic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlass {
    /// Who gets access.
    pub provider_id: Uuid,
    /// To whose diary.
    pub patient_id: Uuid,
    /// Why (shown in the audit).
    pub reason: String,
    /// From when.
    pub starts_at: DateTime<Utc>,
    /// Until when; it ends by itself.
    pub ends_at: DateTime<Utc>,
}

/// One read of a patient's data by a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AccessRecord {
    /// Whose data was read.
    pub patient_id: Uuid,
    /// Who read it.
    pub provider_id: Uuid,
    /// The provider's name, as it is now (filled in when the log is read).
    pub provider_name: String,
    /// What was read: the path of the page or API route.
    pub what: String,
    /// When.
    pub at: DateTime<Utc>,
    /// From which address, when known.
    pub address: Option<String>,
    /// Whether the read was allowed by a break-glass grant rather than a share.
    pub break_glass: bool,
}

/// The id under which the access log records what the clinic's administrator did (an export
/// from the command line): no provider or analyst has it.
pub const ADMINISTRATOR_ID: Uuid = Uuid::nil();

/// The name shown for a reader of the access log: the provider's or analyst's, or the clinic
/// administrator's for [`ADMINISTRATOR_ID`].
pub(crate) fn reader_name(reader: Uuid, name: Option<String>) -> String {
    match name {
        Some(name) => name,
        None if reader == ADMINISTRATOR_ID => "clinic administrator".into(),
        None => String::new(),
    }
}

/// Provider review storage, beside [`super::Storage`] and implemented by every backend.
pub trait ProviderStorage: Clone + Send + Sync + 'static {
    /// Creates a provider.
    ///
    /// # Failure
    /// [`StorageError::Conflict`] if the email or id is taken.
    fn create_provider(
        &self,
        provider: NewProvider,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Every provider, oldest first.
    fn list_providers(
        &self,
    ) -> impl Future<Output = Result<Vec<ProviderInfo>, StorageError>> + Send;

    /// One provider, or `None`.
    fn provider(
        &self,
        provider_id: Uuid,
    ) -> impl Future<Output = Result<Option<ProviderInfo>, StorageError>> + Send;

    /// What sign-in needs for the provider with `email` (lowercased), or `None`.
    fn provider_login(
        &self,
        email: String,
    ) -> impl Future<Output = Result<Option<ProviderLogin>, StorageError>> + Send;

    /// Consumes the setup token with hash `setup_hash` and sets the password; returns the
    /// provider id.
    ///
    /// # Failure
    /// [`StorageError::InvalidCode`] if the token is unknown, used or expired at `now`, or the
    /// provider is disabled.
    fn set_password(
        &self,
        setup_hash: SecretHash,
        password_hash: String,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Uuid, StorageError>> + Send;

    /// Replaces the provider's share code; the old one stops working at once.
    ///
    /// # Failure
    /// [`StorageError::NotFound`] for an unknown provider.
    fn set_share_code(
        &self,
        provider_id: Uuid,
        share_code_hash: SecretHash,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Disables a provider from `now` on and ends its sessions; its tokens and shares stop
    /// granting anything. Disabling twice keeps the first time.
    ///
    /// # Failure
    /// [`StorageError::NotFound`] for an unknown provider.
    fn disable_provider(
        &self,
        provider_id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Stores a new sign-in session.
    fn create_session(
        &self,
        session_hash: SecretHash,
        provider_id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The provider of a live session, marking it used at `now`; `None` for an unknown session,
    /// one idle since before `idle_since` (which is ended), or a disabled provider.
    fn touch_session(
        &self,
        session_hash: SecretHash,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Uuid>, StorageError>> + Send;

    /// Ends a session; ending an unknown one does nothing.
    fn end_session(
        &self,
        session_hash: SecretHash,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Stores a provider API token.
    ///
    /// # Failure
    /// [`StorageError::NotFound`] for an unknown provider.
    fn create_provider_token(
        &self,
        token_id: Uuid,
        provider_id: Uuid,
        token_hash: SecretHash,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The provider and secret hash of an unrevoked token of an enabled provider, or `None`.
    fn provider_token(
        &self,
        token_id: Uuid,
    ) -> impl Future<Output = Result<Option<(Uuid, SecretHash)>, StorageError>> + Send;

    /// Revokes an API token. Revoking twice keeps the first time.
    ///
    /// # Failure
    /// [`StorageError::NotFound`] for an unknown token.
    fn revoke_provider_token(
        &self,
        token_id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Shares the patient's diary with the enabled provider whose share code hashes to
    /// `share_code_hash`. Sharing again keeps the first time.
    ///
    /// # Failure
    /// [`StorageError::NotFound`] if no enabled provider has that code or the patient does not
    /// exist: the two are not told apart.
    fn share(
        &self,
        patient_id: Uuid,
        share_code_hash: SecretHash,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<ShareInfo, StorageError>> + Send;

    /// Ends the patient's share with a provider.
    ///
    /// # Failure
    /// [`StorageError::NotFound`] if the patient does not share with that provider.
    fn unshare(
        &self,
        patient_id: Uuid,
        provider_id: Uuid,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The providers the patient shares with, oldest share first.
    fn shares(
        &self,
        patient_id: Uuid,
    ) -> impl Future<Output = Result<Vec<ShareInfo>, StorageError>> + Send;

    /// Stores a break-glass grant.
    ///
    /// # Failure
    /// [`StorageError::NotFound`] if the patient or the provider does not exist.
    fn grant_break_glass(
        &self,
        grant: BreakGlass,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Why the provider may read the patient at `now` (a share before a break-glass grant), or
    /// `None`: no share, no running grant, or a disabled provider.
    fn access(
        &self,
        provider_id: Uuid,
        patient_id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Access>, StorageError>> + Send;

    /// The patients the provider may read at `now`, each once.
    fn provider_patients(
        &self,
        provider_id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ProviderPatient>, StorageError>> + Send;

    /// Every entry state of the patient (deleted ones included), by entry id.
    fn patient_entries(
        &self,
        patient_id: Uuid,
    ) -> impl Future<Output = Result<Vec<(Uuid, EntryState)>, StorageError>> + Send;

    /// Appends a read to the access log (its `provider_name` is ignored).
    fn record_access(
        &self,
        record: AccessRecord,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The patient's access log, oldest first.
    fn access_log(
        &self,
        patient_id: Uuid,
    ) -> impl Future<Output = Result<Vec<AccessRecord>, StorageError>> + Send;
}
