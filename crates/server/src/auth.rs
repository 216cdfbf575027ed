//! Who is asking: the extractor that turns an `Authorization: Bearer` header into an
//! [`Authenticated`] device, checked against storage. The token format and hashing live in
//! [`crate::secrets`].

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use crate::error::ApiError;
use crate::secrets::{parse_analyst_token, parse_token};
use crate::storage::{Role, Storage};
use crate::AppState;

/// The device a request comes from, checked against storage. Extracting it fails with 401 for a
/// missing, malformed, unknown or revoked token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    /// The one patient whose data this token sees.
    pub patient_id: Uuid,
    /// The device the token belongs to.
    pub device_id: Uuid,
    /// What the token may do.
    pub role: Role,
    /// The feed's epoch when the token was checked.
    pub epoch: Uuid,
}

impl<S: Storage> FromRequestParts<AppState<S>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S>) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let (patient_id, device_id, presented) =
            parse_token(token).ok_or(ApiError::Unauthorized)?;
        let Some(credentials) = state.storage.authenticate(patient_id, device_id).await? else {
            // A device of an erased patient is told so, once it shows a well-formed token for
            // that patient: the erasure record holds no data to leak.
            return Err(match state.storage.erased_at(patient_id).await? {
                Some(at) => ApiError::Erased { at },
                None => ApiError::Unauthorized,
            });
        };
        if !credentials.token_hash.matches(&presented) || credentials.revoked {
            return Err(ApiError::Unauthorized);
        }
        Ok(Authenticated {
            patient_id,
            device_id,
            role: credentials.role,
            epoch: credentials.epoch,
        })
    }
}

/// The analyst a request comes from, checked against storage. Extracting it fails with 401 for
/// a missing, malformed, unknown or revoked token; a device's token is never an analyst's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analyst {
    /// The analyst's id.
    pub analyst_id: Uuid,
}

impl<S: Storage> FromRequestParts<AppState<S>> for Analyst {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S>) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let (analyst_id, presented) = parse_analyst_token(token).ok_or(ApiError::Unauthorized)?;
        let credentials = state
            .storage
            .analyst_credentials(analyst_id)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if !credentials.token_hash.matches(&presented) || credentials.revoked {
            return Err(ApiError::Unauthorized);
        }
        Ok(Analyst { analyst_id })
    }
}

/// The token of an `Authorization: Bearer` header.
fn bearer(parts: &Parts) -> Option<&str> {
    let header = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
}
