//! What the clinic does from the command line: create patients, issue enrolment codes, list and
//! revoke devices, declare a restore from a backup, erase a patient; create, disable and list
//! providers, rotate their share codes, issue their API tokens, grant break-glass access and read
//! a patient's access log. Backend-neutral: each operation takes any [`Storage`].

use std::fmt;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use heeldiary_core::check_label;
use serde::Serialize;
use uuid::Uuid;

use crate::secrets::{new_code, new_provider_token, Opaque, TokenSecret};
use crate::storage::{
    AccessRecord, BreakGlass, DeviceInfo, ErasureRecord, NewAnalyst, NewCode, NewPatient,
    NewProvider, ProviderInfo, Storage, StorageError,
};

/// How long an enrolment code works unless told otherwise.
pub const DEFAULT_CODE_HOURS: u32 = 24;
/// The longest an enrolment code may work: thirty days.
pub const MAX_CODE_HOURS: u32 = 30 * 24;

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No such patient.
    #[error("there is no patient {0}")]
    UnknownPatient(Uuid),
    /// No such device for this patient.
    #[error("patient {patient_id} has no device {device_id}")]
    UnknownDevice {
        /// The patient.
        patient_id: Uuid,
        /// The device asked for.
        device_id: Uuid,
    },
    /// No such provider.
    #[error("there is no provider {0}")]
    UnknownProvider(Uuid),
    /// An argument broke a rule.
    #[error("{0}")]
    Invalid(String),
    /// No such analyst.
    #[error("there is no analyst {0}")]
    UnknownAnalyst(Uuid),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A code handed to a patient for enrolling one device. Printed once; the server keeps its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedCode {
    /// The patient the enrolled device will write for.
    pub patient_id: Uuid,
    /// `XXXX-XXXX-XXXX`, single use.
    pub code: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Display for IssuedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "patient: {}", self.patient_id)?;
        writeln!(f, "code: {}", self.code)?;
        write!(
            f,
            "expires: {} (single use)",
            self.expires_at.format("%Y-%m-%d %H:%M UTC")
        )
    }
}

/// Creates a patient and its first enrolment code, valid for `valid_hours` from `now`.
pub async fn add_patient<S: Storage>(
    storage: &S,
    label: Option<String>,
    valid_hours: u32,
    now: DateTime<Utc>,
) -> Result<IssuedCode, AdminError> {
    check_label(label.as_deref(), "--label").map_err(|e| AdminError::Invalid(e.to_string()))?;
    check_hours(valid_hours)?;
    let patient_id = Uuid::now_v7();
    let code = new_code();
    let expires_at = (now + Duration::hours(i64::from(valid_hours))).trunc_subsecs(0);
    // One transaction: a patient never exists without the code that lets a device enrol.
    storage
        .create_patient_with_code(
            NewPatient {
                patient_id,
                label,
                created_at: now,
            },
            NewCode {
                code_hash: code.hash,
                patient_id,
                created_at: now,
                expires_at,
            },
        )
        .await?;
    Ok(IssuedCode {
        patient_id,
        code: code.code,
        expires_at,
    })
}

/// Issues another enrolment code for an existing patient (for the patient's next device).
pub async fn new_code_for<S: Storage>(
    storage: &S,
    patient_id: Uuid,
    valid_hours: u32,
    now: DateTime<Utc>,
) -> Result<IssuedCode, AdminError> {
    check_hours(valid_hours)?;
    let code = new_code();
    let expires_at = (now + Duration::hours(i64::from(valid_hours))).trunc_subsecs(0);
    storage
        .issue_code(NewCode {
            code_hash: code.hash,
            patient_id,
            created_at: now,
            expires_at,
        })
        .await
        .map_err(|e| match e {
            StorageError::NotFound => AdminError::UnknownPatient(patient_id),
            other => other.into(),
        })?;
    Ok(IssuedCode {
        patient_id,
        code: code.code,
        expires_at,
    })
}

/// Revokes a device: its token stops working at once. Revoking again changes nothing.
pub async fn revoke_device<S: Storage>(
    storage: &S,
    patient_id: Uuid,
    device_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), AdminError> {
    storage
        .revoke_device(patient_id, device_id, now)
        .await
        .map_err(|e| match e {
            StorageError::NotFound => AdminError::UnknownDevice {
                patient_id,
                device_id,
            },
            other => other.into(),
        })
}

/// The devices of a patient.
pub async fn list_devices<S: Storage>(
    storage: &S,
    patient_id: Uuid,
) -> Result<Vec<DeviceInfo>, AdminError> {
    storage.list_devices(patient_id).await.map_err(|e| match e {
        StorageError::NotFound => AdminError::UnknownPatient(patient_id),
        other => other.into(),
    })
}

/// An analyst account and its token. Printed once; the server keeps the token's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedAnalyst {
    /// The analyst's id.
    pub analyst_id: Uuid,
    /// The name given.
    pub name: String,
    /// `analyst.<id>.<secret>`: the bearer token of `GET /v1/export`.
    pub token: String,
}

impl fmt::Display for IssuedAnalyst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "analyst: {} ({})", self.analyst_id, self.name)?;
        write!(f, "token: {} (shown once; keep it secret)", self.token)
    }
}

/// Creates an analyst account: pseudonymous cohort exports over HTTP with its token.
pub async fn add_analyst<S: Storage>(
    storage: &S,
    name: String,
    now: DateTime<Utc>,
) -> Result<IssuedAnalyst, AdminError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(AdminError::Invalid("--name must not be empty".into()));
    }
    check_label(Some(trimmed), "--name").map_err(|e| AdminError::Invalid(e.to_string()))?;
    let analyst_id = Uuid::now_v7();
    let secret = TokenSecret::generate();
    storage
        .add_analyst(NewAnalyst {
            analyst_id,
            name: trimmed.to_string(),
            token_hash: secret.hash,
            created_at: now,
        })
        .await?;
    Ok(IssuedAnalyst {
        analyst_id,
        name: trimmed.to_string(),
        token: secret.into_analyst_token(analyst_id),
    })
}

/// Revokes an analyst's token at once. Revoking again changes nothing.
pub async fn revoke_analyst<S: Storage>(
    storage: &S,
    analyst_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), AdminError> {
    storage
        .revoke_analyst(analyst_id, now)
        .await
        .map_err(|e| match e {
            StorageError::NotFound => AdminError::UnknownAnalyst(analyst_id),
            other => other.into(),
        })
}

/// Declares the data restored from a backup: a new feed epoch, which every device notices on
/// its next sync (it pushes again what it had and reads the feed again). Returns the new epoch.
pub async fn mark_restored<S: Storage>(
    storage: &S,
    now: DateTime<Utc>,
) -> Result<Uuid, AdminError> {
    Ok(storage.mark_restored(now).await?)
}

/// Erases every row of a patient on the server and returns the record left behind. The
/// patient's devices are told on their next sync; their own diaries stay with them.
pub async fn erase_patient<S: Storage>(
    storage: &S,
    patient_id: Uuid,
    erased_by: &str,
    now: DateTime<Utc>,
) -> Result<ErasureRecord, AdminError> {
    check_label(Some(erased_by), "--by").map_err(|e| AdminError::Invalid(e.to_string()))?;
    storage
        .erase_patient(patient_id, erased_by.to_string(), now)
        .await
        .map_err(|e| match e {
            StorageError::NotFound => AdminError::UnknownPatient(patient_id),
            other => other.into(),
        })
}

fn check_hours(hours: u32) -> Result<(), AdminError> {
    if !(1..=MAX_CODE_HOURS).contains(&hours) {
        return Err(AdminError::Invalid(format!(
            "--expires-hours must be between 1 and {MAX_CODE_HOURS}, got {hours}"
        )));
    }
    Ok(())
}

/// How long a provider's setup link works.
pub const SETUP_LINK_HOURS: i64 = 24;
/// The longest a break-glass grant may last: one day.
pub const MAX_BREAK_GLASS_MINUTES: u32 = 24 * 60;

/// A provider just created: what the clinic hands on, printed once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddedProvider {
    /// The provider's id.
    pub provider_id: Uuid,
    /// The provider's name.
    pub name: String,
    /// The sign-in email.
    pub email: String,
    /// What a patient types to share a diary with this provider (`XXXX-XXXX-XXXX`).
    pub share_code: String,
    /// Single-use link where the provider chooses a password.
    pub setup_url: String,
    /// When the setup link stops working.
    pub setup_expires_at: DateTime<Utc>,
}

impl fmt::Display for AddedProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "provider: {} ({}, {})",
            self.provider_id, self.name, self.email
        )?;
        writeln!(f, "share code: {}", self.share_code)?;
        write!(
            f,
            "setup link: {} (single use, until {})",
            self.setup_url,
            self.setup_expires_at.format("%Y-%m-%d %H:%M UTC")
        )
    }
}

/// A new share code for a provider; the old one stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotatedShareCode {
    /// The provider.
    pub provider_id: Uuid,
    /// The new code.
    pub share_code: String,
}

/// A provider API token, printed once; the server keeps its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedProviderToken {
    /// The provider.
    pub provider_id: Uuid,
    /// The token's id, for revoking it.
    pub token_id: Uuid,
    /// `hdp.<token_id>.<secret>`, sent as `Authorization: Bearer`.
    pub token: String,
}

/// A break-glass grant as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantedBreakGlass {
    /// Who.
    pub provider_id: Uuid,
    /// Whose diary.
    pub patient_id: Uuid,
    /// Why.
    pub reason: String,
    /// Until when.
    pub ends_at: DateTime<Utc>,
}

/// The email as stored and looked up: trimmed and lowercased.
pub fn normal_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Creates a provider with a fresh share code and a setup link valid for
/// [`SETUP_LINK_HOURS`]. `public_url` (`https://clinic.example`) makes the link absolute.
pub async fn add_provider<S: Storage>(
    storage: &S,
    name: &str,
    email: &str,
    public_url: Option<&str>,
    now: DateTime<Utc>,
) -> Result<AddedProvider, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(AdminError::Invalid(
            "--name must be 1 to 200 characters without control characters".into(),
        ));
    }
    let email = normal_email(email);
    let well_formed = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !well_formed {
        return Err(AdminError::Invalid(format!(
            "--email `{email}` is not an email address (name@clinic.example)"
        )));
    }
    let code = new_code();
    let setup = Opaque::generate();
    let provider_id = Uuid::now_v7();
    let setup_expires_at = (now + Duration::hours(SETUP_LINK_HOURS)).trunc_subsecs(0);
    storage
        .create_provider(NewProvider {
            provider_id,
            name: name.to_string(),
            email: email.clone(),
            share_code_hash: code.hash,
            setup_hash: setup.hash,
            setup_expires_at,
            created_at: now,
        })
        .await
        .map_err(|e| match e {
            StorageError::Conflict(_) => {
                AdminError::Invalid(format!("a provider with email {email} exists already"))
            }
            other => other.into(),
        })?;
    let path = format!("/provider/setup/{}", setup.text);
    let setup_url = match public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => path,
    };
    Ok(AddedProvider {
        provider_id,
        name: name.to_string(),
        email,
        share_code: code.code,
        setup_url,
        setup_expires_at,
    })
}

fn unknown_provider(provider_id: Uuid) -> impl FnOnce(StorageError) -> AdminError {
    move |e| match e {
        StorageError::NotFound => AdminError::UnknownProvider(provider_id),
        other => other.into(),
    }
}

/// Gives a provider a new share code; patients who shared already keep sharing.
pub async fn rotate_share_code<S: Storage>(
    storage: &S,
    provider_id: Uuid,
) -> Result<RotatedShareCode, AdminError> {
    let code = new_code();
    storage
        .set_share_code(provider_id, code.hash)
        .await
        .map_err(unknown_provider(provider_id))?;
    Ok(RotatedShareCode {
        provider_id,
        share_code: code.code,
    })
}

/// Disables a provider: its sessions end, its tokens and shares stop granting access.
pub async fn disable_provider<S: Storage>(
    storage: &S,
    provider_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), AdminError> {
    storage
        .disable_provider(provider_id, now)
        .await
        .map_err(unknown_provider(provider_id))
}

/// Every provider.
pub async fn list_providers<S: Storage>(storage: &S) -> Result<Vec<ProviderInfo>, AdminError> {
    Ok(storage.list_providers().await?)
}

/// Issues an API token for a provider's EHR integration.
pub async fn provider_token<S: Storage>(
    storage: &S,
    provider_id: Uuid,
    now: DateTime<Utc>,
) -> Result<IssuedProviderToken, AdminError> {
    let token_id = Uuid::now_v7();
    let (token, hash) = new_provider_token(token_id);
    storage
        .create_provider_token(token_id, provider_id, hash, now)
        .await
        .map_err(unknown_provider(provider_id))?;
    Ok(IssuedProviderToken {
        provider_id,
        token_id,
        token,
    })
}

/// Revokes a provider API token at once.
pub async fn revoke_provider_token<S: Storage>(
    storage: &S,
    token_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), AdminError> {
    storage
        .revoke_provider_token(token_id, now)
        .await
        .map_err(|e| match e {
            StorageError::NotFound => AdminError::Invalid(format!("there is no token {token_id}")),
            other => other.into(),
        })
}

/// Who read a patient's diary, and when: the access log the patient reads too.
pub async fn audit<S: Storage>(
    storage: &S,
    patient_id: Uuid,
) -> Result<Vec<AccessRecord>, AdminError> {
    Ok(storage.access_log(patient_id).await?)
}

/// Grants a provider `minutes` of access to a patient's diary without a share.
pub async fn break_glass<S: Storage>(
    storage: &S,
    provider_id: Uuid,
    patient_id: Uuid,
    reason: &str,
    minutes: u32,
    now: DateTime<Utc>,
) -> Result<GrantedBreakGlass, AdminError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AdminError::Invalid(
            "--reason must say why, in 1 to 500 characters".into(),
        ));
    }
    if !(1..=MAX_BREAK_GLASS_MINUTES).contains(&minutes) {
        return Err(AdminError::Invalid(format!(
            "--minutes must be between 1 and {MAX_BREAK_GLASS_MINUTES}, got {minutes}"
        )));
    }
    if storage.provider(provider_id).await?.is_none() {
        return Err(AdminError::UnknownProvider(provider_id));
    }
    let ends_at = now + Duration::minutes(i64::from(minutes));
    storage
        .grant_break_glass(BreakGlass {
            provider_id,
            patient_id,
            reason: reason.to_string(),
            starts_at: now,
            ends_at,
        })
        .await
        .map_err(|e| match e {
            StorageError::NotFound => AdminError::UnknownPatient(patient_id),
            other => other.into(),
        })?;
    Ok(GrantedBreakGlass {
        provider_id,
        patient_id,
        reason: reason.to_string(),
        ends_at,
    })
}
