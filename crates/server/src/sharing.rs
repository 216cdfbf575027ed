//! The patient's side of provider review, with the device token: share the diary with a provider
//! by the provider's share code, list and end shares, and read who looked at the diary.
//!
//! A wrong, rotated or disabled provider's share code gets one answer, the same as for a code
//! that never existed, so that codes cannot be used to find out which providers exist.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::Utc;
use heeldiary_core::wire::{AccessLogResponse, AccessRead, Share, ShareRequest, SharesResponse};
use heeldiary_core::ValidationError;
use uuid::Uuid;

use crate::api::WireJson;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::secrets::hash_code;
use crate::storage::{ShareInfo, Storage, StorageError};
use crate::AppState;

/// The device routes of sharing.
pub fn routes<S: Storage>() -> Router<AppState<S>> {
    Router::new()
        .route("/v1/shares", get(list::<S>).post(share::<S>))
        .route("/v1/shares/{provider_id}", delete(unshare::<S>))
        .route("/v1/access-log", get(access_log::<S>))
}

fn wire_share(s: ShareInfo) -> Share {
    Share {
        provider_id: s.provider_id,
        name: s.name,
        since: s.since,
    }
}

/// The one answer to a share code that does not open a share.
fn unknown_share_code() -> ApiError {
    ValidationError::new(
        "share_code",
        "no provider takes this share code; check it with your clinician",
    )
    .into()
}

async fn share<S: Storage>(
    State(state): State<AppState<S>>,
    device: Authenticated,
    WireJson(request): WireJson<ShareRequest>,
) -> Result<(StatusCode, Json<Share>), ApiError> {
    let hash = hash_code(&request.share_code).ok_or_else(unknown_share_code)?;
    let share = state
        .storage
        .share(device.patient_id, hash, Utc::now())
        .await
        .map_err(|e| match e {
            StorageError::NotFound => unknown_share_code(),
            other => other.into(),
        })?;
    tracing::info!(patient_id = %device.patient_id, provider_id = %share.provider_id, "diary shared");
    Ok((StatusCode::CREATED, Json(wire_share(share))))
}

async fn list<S: Storage>(
    State(state): State<AppState<S>>,
    device: Authenticated,
) -> Result<Json<SharesResponse>, ApiError> {
    let shares = state.storage.shares(device.patient_id).await?;
    Ok(Json(SharesResponse {
        shares: shares.into_iter().map(wire_share).collect(),
    }))
}

async fn unshare<S: Storage>(
    State(state): State<AppState<S>>,
    device: Authenticated,
    Path(provider_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let provider_id = Uuid::parse_str(&provider_id).map_err(|_| ApiError::NotFound)?;
    state
        .storage
        .unshare(device.patient_id, provider_id)
        .await?;
    tracing::info!(patient_id = %device.patient_id, %provider_id, "share ended");
    Ok(StatusCode::NO_CONTENT)
}

async fn access_log<S: Storage>(
    State(state): State<AppState<S>>,
    device: Authenticated,
) -> Result<Json<AccessLogResponse>, ApiError> {
    let log = state.storage.access_log(device.patient_id).await?;
    Ok(Json(AccessLogResponse {
        reads: log
            .into_iter()
            .map(|r| AccessRead {
                provider_id: r.provider_id,
                provider_name: r.provider_name,
                what: r.what,
                at: r.at,
                address: r.address,
                break_glass: r.break_glass,
            })
            .collect(),
    }))
}
