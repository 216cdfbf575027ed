//! What the clinic does from the command line: create patients, issue enrolment codes, list and
//! revoke devices, declare a restore from a backup, erase a patient. Backend-neutral: each operation takes any [`Storage`].

use std::fmt;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use heeldiary_core::check_label;
use serde::Serialize;
use uuid::Uuid;

use crate::secrets::new_code;
use crate::storage::{DeviceInfo, ErasureRecord, NewCode, NewPatient, Storage, StorageError};

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
    /// An argument broke a rule.
    #[error("{0}")]
    Invalid(String),
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
