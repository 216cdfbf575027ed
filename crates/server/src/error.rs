//! The one error type of the HTTP layer: every failure becomes a status and a core
//! [`ErrorBody`]. Clients get a precise, safe message; details of server faults go to the log.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use heeldiary_core::wire::{ErrorBody, ErrorCode, JsonError, PUSH_AFTER_SEQ};
use heeldiary_core::ValidationError;

use crate::storage::StorageError;

/// A request that failed, as the client will see it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The body is not JSON, has unknown fields or values of the wrong type (400).
    #[error("malformed request: {message}")]
    Malformed {
        /// Path of the offending value, if one is to blame.
        field: Option<String>,
        /// What was wrong.
        message: String,
    },
    /// The body or the batch is too large (413).
    #[error("payload too large: {message}")]
    PayloadTooLarge {
        /// Path of the offending value, if one is to blame.
        field: Option<String>,
        /// What the limit is.
        message: String,
    },
    /// A value broke a rule (422).
    #[error("invalid value: {0}")]
    Invalid(ValidationError),
    /// An operation is stamped too far in the future of the server clock (422).
    #[error("clock ahead at {field}")]
    ClockAhead {
        /// Path of the offending stamp (`ops[2].hlc`).
        field: String,
        /// How far ahead it is.
        ahead_ms: u64,
        /// The server clock, for the device to correct itself.
        server_time_ms: u64,
    },
    /// Missing, malformed, unknown or revoked token (401).
    #[error("unauthorized")]
    Unauthorized,
    /// Unknown, used or expired enrolment code (401).
    #[error("invalid enrolment code")]
    InvalidCode,
    /// Nothing here for this token; never says whether it exists for someone else (404).
    #[error("not found")]
    NotFound,
    /// The request collides with existing state (409).
    #[error("conflict: {reason}")]
    Conflict {
        /// The field to blame, if one is.
        field: Option<String>,
        /// Why.
        reason: String,
    },
    /// A pushed operation reuses a sequence number holding a different operation: the diary is a
    /// copy of another (409).
    #[error("sequence taken: {reason}")]
    SequenceTaken {
        /// Path of the offending sequence number (`ops[2].device_seq`).
        field: String,
        /// Why.
        reason: String,
    },
    /// A push was to follow an operation of the device that is not stored (409).
    #[error("out of order: {0}")]
    OutOfOrder(String),
    /// The device id is enrolled already and the secret does not prove it is this device (409).
    #[error("device id taken: {0}")]
    DeviceIdTaken(String),
    /// The patient's data was erased from the server (410).
    #[error("patient erased")]
    Erased {
        /// When.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// The body did not arrive in time (408).
    #[error("the request body did not arrive within {seconds} s")]
    BodyTimeout {
        /// The limit.
        seconds: u64,
    },
    /// Storage is unavailable for now (503).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A fault on the server (500). The text goes to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<JsonError> for ApiError {
    fn from(e: JsonError) -> Self {
        ApiError::Malformed {
            field: Some(e.path),
            message: e.message,
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::Invalid(e)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => ApiError::NotFound,
            StorageError::InvalidCode => ApiError::InvalidCode,
            StorageError::Conflict(reason) => ApiError::Conflict {
                field: None,
                reason,
            },
            StorageError::Unavailable(detail) => ApiError::Unavailable(detail),
            reused @ StorageError::SequenceReused { index, .. } => ApiError::SequenceTaken {
                field: format!("ops[{index}].device_seq"),
                reason: reused.to_string(),
            },
            early @ StorageError::OutOfOrder { .. } => ApiError::OutOfOrder(early.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid(_) | ApiError::ClockAhead { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized | ApiError::InvalidCode => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. }
            | ApiError::SequenceTaken { .. }
            | ApiError::OutOfOrder(_)
            | ApiError::DeviceIdTaken(_) => StatusCode::CONFLICT,
            ApiError::Erased { .. } => StatusCode::GONE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body the client gets.
    pub fn body(&self) -> ErrorBody {
        let plain = |error, message: &str| ErrorBody {
            error,
            message: message.into(),
            field: None,
            server_time_ms: None,
        };
        match self {
            ApiError::Malformed { field, message } => ErrorBody {
                field: field.clone(),
                ..plain(ErrorCode::MalformedRequest, message)
            },
            ApiError::PayloadTooLarge { field, message } => ErrorBody {
                field: field.clone(),
                ..plain(ErrorCode::PayloadTooLarge, message)
            },
            ApiError::Invalid(e) => ErrorBody {
                field: Some(e.field.clone()),
                ..plain(ErrorCode::InvalidValue, &e.to_string())
            },
            ApiError::ClockAhead {
                field,
                ahead_ms,
                server_time_ms,
            } => ErrorBody {
                error: ErrorCode::ClockAhead,
                message: format!(
                    "{field} is {ahead_ms} ms ahead of the server clock (at most {} ms allowed): \
                     correct the device clock from server_time_ms and push again",
                    heeldiary_core::MAX_CLOCK_AHEAD_MS
                ),
                field: Some(field.clone()),
                server_time_ms: Some(*server_time_ms),
            },
            ApiError::Unauthorized => plain(
                ErrorCode::Unauthorized,
                "missing, invalid or revoked token: send `Authorization: Bearer <token>`",
            ),
            ApiError::InvalidCode => plain(
                ErrorCode::InvalidCode,
                "unknown, used or expired enrolment code: ask the clinic for a new one",
            ),
            ApiError::NotFound => plain(ErrorCode::NotFound, "not found"),
            ApiError::Conflict { field, reason } => ErrorBody {
                field: field.clone(),
                ..plain(ErrorCode::InvalidValue, reason)
            },
            ApiError::SequenceTaken { field, reason } => ErrorBody {
                field: Some(field.clone()),
                ..plain(
                    ErrorCode::SequenceTaken,
                    &format!(
                        "{reason}: this diary is a copy of another; register a new device \
                         identity (POST /v1/devices) and push the unacknowledged operations \
                         again under it"
                    ),
                )
            },
            ApiError::OutOfOrder(reason) => ErrorBody {
                field: Some(PUSH_AFTER_SEQ.into()),
                ..plain(
                    ErrorCode::OutOfOrder,
                    &format!(
                        "{reason} (it was refused, or has not arrived yet): push the batches one \
                         at a time, from the first not acknowledged"
                    ),
                )
            },
            ApiError::DeviceIdTaken(reason) => ErrorBody {
                field: Some("device_id".into()),
                ..plain(ErrorCode::DeviceIdTaken, reason)
            },
            ApiError::Erased { at } => plain(
                ErrorCode::PatientErased,
                &format!(
                    "the clinic erased this patient's data from the server on {}; the diary on \
                     this device is kept and can still be exported, but it no longer syncs",
                    at.format("%Y-%m-%d %H:%M UTC")
                ),
            ),
            ApiError::BodyTimeout { seconds } => plain(
                ErrorCode::MalformedRequest,
                &format!("the request body did not arrive within {seconds} s"),
            ),
            ApiError::Unavailable(_) => plain(
                ErrorCode::Unavailable,
                "storage is unavailable for now; retry later",
            ),
            ApiError::Internal(_) => plain(ErrorCode::Internal, "internal server error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "request failed"),
            ApiError::Unavailable(detail) => tracing::warn!(%detail, "storage unavailable"),
            _ => tracing::debug!(error = %self, "request refused"),
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if matches!(self, ApiError::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Middleware: gives an [`ErrorBody`] to error answers made outside the handlers (unknown
/// method, unsupported content encoding), so that every error a client sees has the same shape.
/// HTML error pages of the provider dashboard are left as they are.
pub async fn ensure_error_body(request: Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE);
    let is_json = content_type == Some(&HeaderValue::from_static("application/json"));
    // The provider pages answer their errors as pages.
    let is_page = content_type
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json || is_page {
        return response;
    }
    let error = match status {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyRequests,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::MalformedRequest,
    };
    let body = ErrorBody {
        error,
        message: status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase(),
        field: None,
        server_time_ms: None,
    };
    let mut answer = (status, Json(body)).into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        answer.headers_mut().insert(header::ALLOW, allow.clone());
    }
    answer
}
