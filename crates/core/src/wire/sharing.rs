//! Sharing with providers, from the patient's device: the bodies of `/v1/shares` and
//! `/v1/access-log`, sent with the device token.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /v1/shares`: share this patient's diary with the provider whose share code this is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// The provider's share code (`XXXX-XXXX-XXXX`), as the patient typed it.
    pub share_code: String,
}

/// A provider the diary is shared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    /// The provider's id (what `DELETE /v1/shares/{provider_id}` takes).
    pub provider_id: Uuid,
    /// The provider's name.
    pub name: String,
    /// Since when the diary is shared.
    pub since: DateTime<Utc>,
}

/// `GET /v1/shares`: the providers the diary is shared with, oldest share first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharesResponse {
    /// The shares.
    pub shares: Vec<Share>,
}

/// One read of the patient's data by a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRead {
    /// Who read.
    pub provider_id: Uuid,
    /// Their name.
    pub provider_name: String,
    /// What they opened (a page or API path).
    pub what: String,
    /// When.
    pub at: DateTime<Utc>,
    /// From which network address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// True when the read was allowed by the clinic's time-limited break-glass access rather
    /// than by a share of the patient.
    pub break_glass: bool,
}

/// `GET /v1/access-log`: every provider read of this patient's data, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogResponse {
    /// The reads.
    pub reads: Vec<AccessRead>,
}
