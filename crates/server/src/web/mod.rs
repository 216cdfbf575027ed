//! Provider review over HTTP: sign-in (setup link, login, logout), the dashboard pages under
//! `/provider/` (server-rendered HTML that works without JavaScript) and the same data as JSON
//! under `/v1/provider/` for an EHR integration.
//!
//! Who asks: a session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` under TLS, ended after
//! [`WebOptions::session_idle`] without use) or a provider API token (`Authorization: Bearer
//! hdp.…`). A device token is never a provider. Every state-changing form carries a CSRF token
//! that must match the `hd_csrf` cookie (double submit) or the request is refused with 403.
//! Wrong passwords for one email are slowed, then locked out for a while (429 with
//! `Retry-After`); the answer never says whether the email or the password was wrong.
//!
//! Every patient route checks access on each request (a share, or a running break-glass grant;
//! nothing is cached, so an unshare takes effect on the next request), answers a patient the
//! provider may not read exactly like an unknown one (404), and appends each read to the
//! patient's access log before answering.

mod chart;
mod summary;
mod throttle;
mod view;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Path, RawQuery, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::admin::normal_email;
use crate::error::ApiError;
use crate::secrets::{
    decoy_password_hash, hash_password, parse_provider_token, verify_password, Opaque,
    MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS,
};
use crate::storage::{Access, AccessRecord, Storage, StorageError};
use crate::AppState;

pub use summary::Range;
pub use throttle::{LoginThrottle, ThrottlePolicy};

/// The session cookie.
pub const SESSION_COOKIE: &str = "hd_session";
/// The CSRF cookie; forms carry the same value in a hidden `csrf` field.
pub const CSRF_COOKIE: &str = "hd_csrf";

/// How the provider pages behave.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// Mark cookies `Secure` (the server speaks TLS).
    pub secure_cookies: bool,
    /// A session unused for this long ends.
    pub session_idle: Duration,
    /// How wrong passwords are slowed and locked out.
    pub throttle: ThrottlePolicy,
}

impl Default for WebOptions {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            session_idle: Duration::from_secs(30 * 60),
            throttle: ThrottlePolicy::default(),
        }
    }
}

/// What the provider pages keep between requests: their options and the sign-in throttle.
#[derive(Debug)]
pub struct WebState {
    /// The options.
    pub options: WebOptions,
    /// Wrong-password counts by email.
    pub throttle: LoginThrottle,
}

impl WebState {
    /// Fresh state under `options`.
    pub fn new(options: WebOptions) -> Self {
        Self {
            throttle: LoginThrottle::new(options.throttle.clone()),
            options,
        }
    }
}

/// The provider routes, pages and JSON.
pub fn routes<S: Storage>() -> Router<AppState<S>> {
    Router::new()
        .route(
            "/provider",
            get(|| async { redirect("/provider/patients") }),
        )
        .route(
            "/provider/setup/{token}",
            get(setup_form::<S>).post(setup::<S>),
        )
        .route("/provider/login", get(login_form::<S>).post(login::<S>))
        .route("/provider/logout", axum::routing::post(logout::<S>))
        .route("/provider/patients", get(patients_page::<S>))
        .route("/provider/patients/{patient_id}", get(patient_page::<S>))
        .route(
            "/provider/patients/{patient_id}/report",
            get(report_page::<S>),
        )
        .route("/v1/provider/patients", get(api_patients::<S>))
        .route(
            "/v1/provider/patients/{patient_id}/entries",
            get(api_entries::<S>),
        )
        .route(
            "/v1/provider/patients/{patient_id}/trends",
            get(api_trends::<S>),
        )
}

/// A page or API failure: pages answer HTML, the API the usual JSON error.
#[derive(Debug)]
enum WebError {
    /// For a page: go and sign in.
    SignIn,
    /// An error page with this status and message.
    Page(StatusCode, &'static str),
    /// A JSON error.
    Api(ApiError),
}

impl From<StorageError> for WebError {
    fn from(e: StorageError) -> Self {
        WebError::Api(e.into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::SignIn => redirect("/provider/login"),
            WebError::Page(status, message) => {
                (status, no_store(), Html(view::error_page(status, message))).into_response()
            }
            WebError::Api(e) => e.into_response(),
        }
    }
}

/// The page answer to a failure that came from storage or an access check.
fn page_error(e: WebError) -> WebError {
    match e {
        WebError::Api(ApiError::NotFound) => WebError::Page(StatusCode::NOT_FOUND, "not found"),
        WebError::Api(ApiError::Unavailable(_)) => WebError::Page(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server cannot reach its storage for now; try again in a moment",
        ),
        WebError::Api(ApiError::Internal(detail)) => {
            tracing::error!(%detail, "page failed");
            WebError::Page(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
        }
        other => other,
    }
}

fn redirect(to: &'static str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, HeaderValue::from_static(to))],
    )
        .into_response()
}

/// Pages hold patient data: no cache may keep them.
fn no_store() -> [(axum::http::HeaderName, HeaderValue); 1] {
    [(CACHE_CONTROL, HeaderValue::from_static("no-store"))]
}

/// The value of cookie `name` in the request, if any.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value with the flags every cookie here gets.
fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).expect("cookie text is ASCII")
}

/// The request's CSRF value: the cookie's, or a fresh one to set with the page.
fn csrf_for_form<S>(state: &AppState<S>, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie(headers, CSRF_COOKIE).filter(|v| Opaque::hash_presented(v).is_some()) {
        Some(value) => (value.to_string(), None),
        None => {
            let fresh = Opaque::generate();
            let header = set_cookie(
                CSRF_COOKIE,
                &fresh.text,
                None,
                state.web.options.secure_cookies,
            );
            (fresh.text, Some(header))
        }
    }
}

/// Refuses a form whose `csrf` field does not match the CSRF cookie (403).
fn check_csrf(headers: &HeaderMap, presented: &str) -> Result<(), WebError> {
    let expected = cookie(headers, CSRF_COOKIE).unwrap_or("");
    let same: bool = expected.as_bytes().ct_eq(presented.as_bytes()).into();
    if expected.is_empty() || !same {
        return Err(WebError::Page(
            StatusCode::FORBIDDEN,
            "this form has expired or did not come from this site; open the page again",
        ));
    }
    Ok(())
}

/// The network address of a caller, as the server hands it to the router
/// (`into_make_service_with_connect_info::<PeerAddr>()`), for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, crate::limits::CappedListener>,
    > for PeerAddr
{
    fn connect_info(
        stream: axum::serve::IncomingStream<'_, crate::limits::CappedListener>,
    ) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// For HTTPS, where the server hands over the peer's socket address.
impl axum::extract::connect_info::Connected<SocketAddr> for PeerAddr {
    fn connect_info(addr: SocketAddr) -> Self {
        PeerAddr(addr)
    }
}

/// The network address of the caller, for the access log.
fn address(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<PeerAddr>>()
        .map(|ConnectInfo(PeerAddr(addr))| addr.ip().to_string())
}

/// A signed-in provider (session cookie or API token), with the caller's address.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The provider.
    pub provider_id: Uuid,
    /// The session hash, when signed in by cookie (for sign-out).
    session: Option<crate::secrets::SecretHash>,
    /// The caller's network address.
    pub address: Option<String>,
}

/// Who the provider is, or `None`; a bearer header that is not a live provider token is an
/// error (401), never a fall-back to the cookie.
async fn identify<S: Storage>(
    parts: &Parts,
    state: &AppState<S>,
) -> Result<Option<SignedIn>, ApiError> {
    let address = address(parts);
    if let Some(header) = parts.headers.get(AUTHORIZATION) {
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or(ApiError::Unauthorized)?;
        let (token_id, presented) =
            parse_provider_token(token.trim()).ok_or(ApiError::Unauthorized)?;
        let (provider_id, hash) = state
            .storage
            .provider_token(token_id)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if !hash.matches(&presented) {
            return Err(ApiError::Unauthorized);
        }
        return Ok(Some(SignedIn {
            provider_id,
            session: None,
            address,
        }));
    }
    let Some(hash) = cookie(&parts.headers, SESSION_COOKIE).and_then(Opaque::hash_presented) else {
        return Ok(None);
    };
    let now = Utc::now();
    let idle =
        chrono::Duration::from_std(state.web.options.session_idle).unwrap_or(chrono::Duration::MAX);
    let provider_id = state.storage.touch_session(hash, now, now - idle).await?;
    Ok(provider_id.map(|provider_id| SignedIn {
        provider_id,
        session: Some(hash),
        address,
    }))
}

/// A provider on a page: anyone else is sent to sign in.
struct PageProvider(SignedIn);

impl<S: Storage> FromRequestParts<AppState<S>> for PageProvider {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S>) -> Result<Self, Response> {
        match identify(parts, state).await {
            Ok(Some(who)) => Ok(PageProvider(who)),
            Ok(None) | Err(ApiError::Unauthorized) => Err(WebError::SignIn.into_response()),
            Err(e) => Err(page_error(WebError::Api(e)).into_response()),
        }
    }
}

/// A provider on the JSON API: anyone else gets 401.
struct ApiProvider(SignedIn);

impl<S: Storage> FromRequestParts<AppState<S>> for ApiProvider {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S>) -> Result<Self, ApiError> {
        identify(parts, state)
            .await?
            .map(ApiProvider)
            .ok_or(ApiError::Unauthorized)
    }
}

/// Opens a patient for a provider: parses the id, checks access now, and appends the read to
/// the access log. Anything the provider may not read is [`ApiError::NotFound`].
async fn open_patient<S: Storage>(
    state: &AppState<S>,
    who: &SignedIn,
    patient_id: &str,
    what: String,
) -> Result<(Uuid, Access), WebError> {
    let patient_id = Uuid::parse_str(patient_id).map_err(|_| WebError::Api(ApiError::NotFound))?;
    let now = Utc::now();
    let access = state
        .storage
        .access(who.provider_id, patient_id, now)
        .await?
        .ok_or(WebError::Api(ApiError::NotFound))?;
    state
        .storage
        .record_access(AccessRecord {
            patient_id,
            provider_id: who.provider_id,
            provider_name: String::new(),
            what,
            at: now,
            address: who.address.clone(),
            break_glass: access == Access::BreakGlass,
        })
        .await?;
    Ok((patient_id, access))
}

// ---- sign-in ----

#[derive(Debug, Deserialize)]
struct SetupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

async fn setup_form<S: Storage>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let (csrf, set) = csrf_for_form(&state, &headers);
    let page = view::setup_page(&token, &csrf, None);
    with_cookie(StatusCode::OK, page, set)
}

fn with_cookie(status: StatusCode, page: String, cookie: Option<HeaderValue>) -> Response {
    let mut response = (status, no_store(), Html(page)).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

async fn setup<S: Storage>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<SetupForm>,
) -> Result<Response, WebError> {
    check_csrf(&headers, &form.csrf)?;
    let again = |status, message: &str| {
        with_cookie(
            status,
            view::setup_page(&token, &form.csrf, Some(message)),
            None,
        )
    };
    let chars = form.password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Ok(again(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!(
                "the password must have {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
            ),
        ));
    }
    if form.password != form.password_confirm {
        return Ok(again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the two passwords differ",
        ));
    }
    let Some(setup_hash) = Opaque::hash_presented(&token) else {
        return Err(used_link());
    };
    let password = form.password.clone();
    let phc = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| WebError::Api(ApiError::Internal(e.to_string())))?
        .map_err(|e| WebError::Api(ApiError::Internal(e)))?;
    match state
        .storage
        .set_password(setup_hash, phc, Utc::now())
        .await
    {
        Ok(provider_id) => {
            tracing::info!(%provider_id, "provider password set");
            Ok(redirect("/provider/login"))
        }
        Err(StorageError::InvalidCode) => Err(used_link()),
        Err(e) => Err(page_error(e.into())),
    }
}

fn used_link() -> WebError {
    WebError::Page(
        StatusCode::GONE,
        "this setup link is used, expired or unknown; ask the clinic for a new one",
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

async fn login_form<S: Storage>(State(state): State<AppState<S>>, headers: HeaderMap) -> Response {
    let (csrf, set) = csrf_for_form(&state, &headers);
    with_cookie(StatusCode::OK, view::login_page(&csrf, None), set)
}

/// The one message for any failed sign-in.
const WRONG_SIGN_IN: &str = "the email or the password is wrong";

async fn login<S: Storage>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    check_csrf(&headers, &form.csrf)?;
    let email = normal_email(&form.email);
    if let Some(wait) = state.web.throttle.locked(&email) {
        return Ok(locked(wait, &form.csrf));
    }
    let login = state.storage.provider_login(email.clone()).await?;
    let stored = login
        .as_ref()
        .filter(|l| !l.disabled)
        .and_then(|l| l.password_hash.clone());
    let password = form.password.clone();
    // An unknown email costs the same as a wrong password.
    let matches = tokio::task::spawn_blocking(move || match stored {
        Some(phc) => verify_password(&phc, &password),
        None => {
            verify_password(decoy_password_hash(), &password);
            false
        }
    })
    .await
    .map_err(|e| WebError::Api(ApiError::Internal(e.to_string())))?;
    let provider_id = match (matches, login) {
        (true, Some(login)) => login.provider_id,
        _ => {
            let outcome = state.web.throttle.failed(&email);
            if let Some(wait) = outcome.locked_for {
                tracing::warn!("sign-in locked after repeated wrong passwords");
                return Ok(locked(wait, &form.csrf));
            }
            tokio::time::sleep(outcome.slow_down).await;
            return Ok(with_cookie(
                StatusCode::UNAUTHORIZED,
                view::login_page(&form.csrf, Some(WRONG_SIGN_IN)),
                None,
            ));
        }
    };
    state.web.throttle.succeeded(&email);
    let session = Opaque::generate();
    state
        .storage
        .create_session(session.hash, provider_id, Utc::now())
        .await?;
    tracing::info!(%provider_id, "provider signed in");
    let mut response = redirect("/provider/patients");
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            &session.text,
            None,
            state.web.options.secure_cookies,
        ),
    );
    Ok(response)
}

fn locked(wait: Duration, csrf: &str) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = with_cookie(
        StatusCode::TOO_MANY_REQUESTS,
        view::login_page(
            csrf,
            Some("too many failed sign-ins for this account; wait a while and try again"),
        ),
        None,
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[derive(Debug, Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout<S: Storage>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
    PageProvider(who): PageProvider,
    Form(form): Form<LogoutForm>,
) -> Result<Response, WebError> {
    check_csrf(&headers, &form.csrf)?;
    if let Some(hash) = who.session {
        state.storage.end_session(hash).await?;
    }
    let mut response = redirect("/provider/login");
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            "",
            Some(0),
            state.web.options.secure_cookies,
        ),
    );
    Ok(response)
}

// ---- pages ----

async fn patients_page<S: Storage>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
    PageProvider(who): PageProvider,
) -> Result<Response, WebError> {
    let today = Utc::now().date_naive();
    let rows = summary::patient_list(&state.storage, who.provider_id, today)
        .await
        .map_err(|e| page_error(e.into()))?;
    let provider = state.storage.provider(who.provider_id).await?;
    let (csrf, set) = csrf_for_form(&state, &headers);
    let name = provider.map(|p| p.name).unwrap_or_default();
    Ok(with_cookie(
        StatusCode::OK,
        view::patients_page(&name, &csrf, &rows),
        set,
    ))
}

async fn patient_page<S: Storage>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
    PageProvider(who): PageProvider,
    Path(patient_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    let range = Range::from_query(query.as_deref().unwrap_or(""));
    let what = format!("page /provider/patients/{patient_id}");
    let (patient_id, access) = open_patient(&state, &who, &patient_id, what)
        .await
        .map_err(page_error)?;
    let today = Utc::now().date_naive();
    let data = summary::load(&state.storage, patient_id, today, true)
        .await
        .map_err(|e| page_error(e.into()))?;
    let label = summary::label_of(&state.storage, who.provider_id, patient_id).await?;
    let (csrf, set) = csrf_for_form(&state, &headers);
    let page = view::patient_page(&view::PatientPage {
        csrf: &csrf,
        patient_id,
        label: label.as_deref(),
        access,
        range,
        today,
        data: &data,
    });
    Ok(with_cookie(StatusCode::OK, page, set))
}

async fn report_page<S: Storage>(
    State(state): State<AppState<S>>,
    PageProvider(who): PageProvider,
    Path(patient_id): Path<String>,
) -> Result<Response, WebError> {
    let what = format!("report /provider/patients/{patient_id}/report");
    let (patient_id, access) = open_patient(&state, &who, &patient_id, what)
        .await
        .map_err(page_error)?;
    let today = Utc::now().date_naive();
    let data = summary::load(&state.storage, patient_id, today, false)
        .await
        .map_err(|e| page_error(e.into()))?;
    let label = summary::label_of(&state.storage, who.provider_id, patient_id).await?;
    let page = view::report_page(patient_id, label.as_deref(), access, today, &data);
    Ok(with_cookie(StatusCode::OK, page, None))
}

// ---- JSON ----

/// One patient in `GET /v1/provider/patients`.
#[derive(Debug, Clone, Serialize)]
pub struct PatientSummary {
    /// The patient.
    pub patient_id: Uuid,
    /// The clinic's label.
    pub label: Option<String>,
    /// Why this provider may read it.
    pub access: Access,
    /// The day of the latest entry.
    pub last_entry_day: Option<chrono::NaiveDate>,
    /// Days with an entry among the last 28.
    pub days_logged_28: u32,
    /// The pattern of the last 28 days (`plantar_fasciitis_like`, `back_related`, `mixed`,
    /// `insufficient_data`).
    pub pattern: heeldiary_trends::PatternKind,
    /// The pattern in words.
    pub pattern_summary: String,
    /// Red flags of the trend report (kinds).
    pub red_flags: Vec<heeldiary_trends::RedFlagKind>,
}

async fn api_patients<S: Storage>(
    State(state): State<AppState<S>>,
    ApiProvider(who): ApiProvider,
) -> Result<Json<serde_json::Value>, ApiError> {
    let today = Utc::now().date_naive();
    let rows = summary::patient_list(&state.storage, who.provider_id, today).await?;
    Ok(Json(serde_json::json!({ "patients": rows })))
}

async fn api_entries<S: Storage>(
    State(state): State<AppState<S>>,
    ApiProvider(who): ApiProvider,
    Path(patient_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let what = format!("api /v1/provider/patients/{patient_id}/entries");
    let (patient_id, _) = open_patient(&state, &who, &patient_id, what)
        .await
        .map_err(api_error)?;
    let entries = summary::entry_responses(&state.storage, patient_id).await?;
    Ok(Json(
        serde_json::json!({ "patient_id": patient_id, "entries": entries }),
    ))
}

async fn api_trends<S: Storage>(
    State(state): State<AppState<S>>,
    ApiProvider(who): ApiProvider,
    Path(patient_id): Path<String>,
) -> Result<Json<heeldiary_trends::Report>, ApiError> {
    let what = format!("api /v1/provider/patients/{patient_id}/trends");
    let (patient_id, _) = open_patient(&state, &who, &patient_id, what)
        .await
        .map_err(api_error)?;
    let data = summary::load(&state.storage, patient_id, Utc::now().date_naive(), false).await?;
    Ok(Json(data.report))
}

fn api_error(e: WebError) -> ApiError {
    match e {
        WebError::Api(e) => e,
        WebError::SignIn => ApiError::Unauthorized,
        WebError::Page(status, _) if status == StatusCode::NOT_FOUND => ApiError::NotFound,
        WebError::Page(_, message) => ApiError::Internal(message.into()),
    }
}
