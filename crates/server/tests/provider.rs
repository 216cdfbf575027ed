//! Provider review through the router: sign-in (setup link, CSRF, lockout, cookie flags), the
//! authorisation matrix of every actor against every route, revocation on the next request,
//! escaping of diary text, and the access log. On SQLite here; on PostgreSQL too when
//! `HEELDIARY_TEST_DATABASE_URL` is set.

use axum::body::{to_bytes, Body};
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::{Duration, Utc};
use heeldiary_core::wire::AccessLogResponse;
use heeldiary_server::admin;
use heeldiary_server::storage::{BreakGlass, PoolOptions, ScratchSchema, SqliteStorage, Storage};
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery 42";

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

/// A browser's worth of state: its cookies.
#[derive(Default, Clone)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn take(&mut self, answer: &Answer) {
        for value in answer.headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (k, v) = pair.split_once('=').unwrap();
            self.0.retain(|(name, _)| name != k);
            if !v.is_empty() {
                self.0.push((k.to_string(), v.to_string()));
            }
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Harness<S> {
    app: Router,
    storage: S,
}

impl<S: Storage> Harness<S> {
    fn new(storage: S) -> Self {
        Self {
            app: heeldiary_server::app(storage.clone()),
            storage,
        }
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&self, path: &str, jar: Option<&Jar>, bearer: Option<&str>) -> Answer {
        let mut request = Request::builder().uri(path);
        if let Some(jar) = jar {
            request = request.header(header::COOKIE, jar.header());
        }
        if let Some(token) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn form(&self, path: &str, jar: &Jar, fields: &[(&str, &str)]) -> Answer {
        let body: String = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, jar.header())
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    /// Opens the form page at `path` (taking its CSRF cookie) and posts `fields` with the token.
    async fn submit(&self, path: &str, jar: &mut Jar, fields: &[(&str, &str)]) -> Answer {
        let page = self.get(path, Some(jar), None).await;
        jar.take(&page);
        let csrf = jar.get("hd_csrf").expect("a CSRF cookie").to_string();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let answer = self.form(path, jar, &all).await;
        jar.take(&answer);
        answer
    }

    /// A provider with a password set at its setup link: (id, share code, email).
    async fn provider(&self, name: &str) -> (Uuid, String, String) {
        let email = format!("{}@clinic.test", Uuid::now_v7());
        let added = admin::add_provider(&self.storage, name, &email, None, Utc::now())
            .await
            .unwrap();
        let mut jar = Jar::default();
        let answer = self
            .submit(
                &added.setup_url,
                &mut jar,
                &[("password", PASSWORD), ("password_confirm", PASSWORD)],
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        (added.provider_id, added.share_code, email)
    }

    /// A signed-in browser for `email`.
    async fn sign_in(&self, email: &str) -> Jar {
        let mut jar = Jar::default();
        let answer = self
            .submit(
                "/provider/login",
                &mut jar,
                &[("email", email), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        assert!(jar.get("hd_session").is_some());
        jar
    }

    /// An enrolled device of a new patient: (patient, token).
    async fn patient(&self, label: &str) -> (Uuid, String) {
        let issued = admin::add_patient(&self.storage, Some(label.into()), 24, Utc::now())
            .await
            .unwrap();
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/enrol")
            .body(Body::from(
                json!({"code": issued.code, "device_id": Uuid::now_v7()}).to_string(),
            ))
            .unwrap();
        let answer = self.send(request).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let body: Value = serde_json::from_str(&answer.body).unwrap();
        (
            issued.patient_id,
            body["token"].as_str().unwrap().to_string(),
        )
    }

    async fn device_json(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        self.send(request).await
    }

    async fn share(&self, token: &str, code: &str) -> Answer {
        self.device_json(
            Method::POST,
            "/v1/shares",
            token,
            Some(json!({ "share_code": code })),
        )
        .await
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".into(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Who asks, in the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    OwnDevice,
    OtherDevice,
    SharedProvider,
    UnsharedProvider,
    ProviderAfterUnshare,
    DisabledProvider,
    BreakGlassRunning,
    BreakGlassEnded,
    Anonymous,
}

/// The routes, with `{P}` for the patient under test.
const ROUTES: [&str; 9] = [
    "/provider/patients",
    "/provider/patients/{P}",
    "/provider/patients/{P}/report",
    "/v1/provider/patients",
    "/v1/provider/patients/{P}/entries",
    "/v1/provider/patients/{P}/trends",
    "/v1/shares",
    "/v1/access-log",
    "/v1/pull",
];

/// The status each actor gets on each route of [`ROUTES`]. Pages send anyone not signed in to
/// the sign-in page (303); the JSON API answers 401; a provider without access gets 404 exactly
/// as for an unknown patient.
fn expected(actor: Actor) -> [u16; 9] {
    use Actor::*;
    match actor {
        OwnDevice | OtherDevice => [303, 303, 303, 401, 401, 401, 200, 200, 200],
        SharedProvider | BreakGlassRunning => [200, 200, 200, 200, 200, 200, 401, 401, 401],
        UnsharedProvider | ProviderAfterUnshare | BreakGlassEnded => {
            [200, 404, 404, 200, 404, 404, 401, 401, 401]
        }
        DisabledProvider | Anonymous => [303, 303, 303, 401, 401, 401, 401, 401, 401],
    }
}

async fn authorisation_matrix<S: Storage>(h: Harness<S>) {
    let (patient, own_token) = h.patient("Ada Example").await;
    let (_, other_token) = h.patient("Other Patient").await;
    let mut jars = Vec::new();
    let mut provider_ids = Vec::new();
    for name in [
        "Dr Shared",
        "Dr Unshared",
        "Dr Unshare",
        "Dr Disabled",
        "Dr Glass",
        "Dr Ended",
    ] {
        let (id, code, email) = h.provider(name).await;
        jars.push(h.sign_in(&email).await);
        provider_ids.push((id, code));
    }
    // Shares, an unshare, a disabled provider and two break-glass grants.
    for i in [0, 2, 3] {
        let answer = h.share(&own_token, &provider_ids[i].1).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    let unshare = h
        .device_json(
            Method::DELETE,
            &format!("/v1/shares/{}", provider_ids[2].0),
            &own_token,
            None,
        )
        .await;
    assert_eq!(unshare.status, StatusCode::NO_CONTENT);
    admin::disable_provider(&h.storage, provider_ids[3].0, Utc::now())
        .await
        .unwrap();
    admin::break_glass(
        &h.storage,
        provider_ids[4].0,
        patient,
        "emergency visit",
        30,
        Utc::now(),
    )
    .await
    .unwrap();
    h.storage
        .grant_break_glass(BreakGlass {
            provider_id: provider_ids[5].0,
            patient_id: patient,
            reason: "last week's emergency".into(),
            starts_at: Utc::now() - Duration::hours(2),
            ends_at: Utc::now() - Duration::hours(1),
        })
        .await
        .unwrap();

    let actors = [
        (Actor::OwnDevice, None, Some(own_token.as_str())),
        (Actor::OtherDevice, None, Some(other_token.as_str())),
        (Actor::SharedProvider, Some(&jars[0]), None),
        (Actor::UnsharedProvider, Some(&jars[1]), None),
        (Actor::ProviderAfterUnshare, Some(&jars[2]), None),
        (Actor::DisabledProvider, Some(&jars[3]), None),
        (Actor::BreakGlassRunning, Some(&jars[4]), None),
        (Actor::BreakGlassEnded, Some(&jars[5]), None),
        (Actor::Anonymous, None, None),
    ];
    let mut wrong = Vec::new();
    for (actor, jar, bearer) in actors {
        for (route, want) in ROUTES.iter().zip(expected(actor)) {
            let path = route.replace("{P}", &patient.to_string());
            let got = h.get(&path, jar, bearer).await.status.as_u16();
            if got != want {
                wrong.push(format!("{actor:?} GET {path}: {got}, expected {want}"));
            }
        }
        // An unknown patient answers as a patient without access.
        let unknown = format!("/v1/provider/patients/{}/entries", Uuid::now_v7());
        let got = h.get(&unknown, jar, bearer).await.status.as_u16();
        let want = if jar.is_some() && expected(actor)[0] == 200 {
            404
        } else {
            401
        };
        if got != want {
            wrong.push(format!("{actor:?} GET {unknown}: {got}, expected {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // The break-glass reads are marked as such in the log the patient reads.
    let log: AccessLogResponse =
        serde_json::from_str(&h.get("/v1/access-log", None, Some(&own_token)).await.body).unwrap();
    let by = |id: Uuid| log.reads.iter().filter(move |r| r.provider_id == id);
    // Page, report, entries and trends; the list names no patient's data.
    assert_eq!(by(provider_ids[0].0).count(), 4, "{log:?}");
    assert!(by(provider_ids[0].0).all(|r| !r.break_glass));
    assert_eq!(by(provider_ids[4].0).count(), 4);
    assert!(by(provider_ids[4].0).all(|r| r.break_glass));
    for refused in [1, 2, 3, 5] {
        assert_eq!(by(provider_ids[refused].0).count(), 0);
    }
    // The other patient's log is empty.
    let other: AccessLogResponse =
        serde_json::from_str(&h.get("/v1/access-log", None, Some(&other_token)).await.body)
            .unwrap();
    assert!(other.reads.is_empty());
}

async fn sqlite() -> Harness<SqliteStorage> {
    Harness::new(SqliteStorage::open_in_memory().await.unwrap())
}

#[tokio::test]
async fn authorisation_matrix_on_sqlite() {
    authorisation_matrix(sqlite().await).await;
}

#[tokio::test]
async fn authorisation_matrix_on_postgres() {
    let Some(schema) = ScratchSchema::create("provider_matrix").await else {
        return;
    };
    let storage = schema.open(&PoolOptions::default()).await;
    authorisation_matrix(Harness::new(storage)).await;
    drop(schema);
}

#[tokio::test]
async fn a_revocation_takes_effect_on_the_next_request() {
    let h = sqlite().await;
    let (patient, token) = h.patient("Ada").await;
    let (provider, code, email) = h.provider("Dr Alpha").await;
    let jar = h.sign_in(&email).await;
    assert_eq!(h.share(&token, &code).await.status, StatusCode::CREATED);
    let page = format!("/provider/patients/{patient}");
    assert_eq!(h.get(&page, Some(&jar), None).await.status, StatusCode::OK);
    let list = h.get("/provider/patients", Some(&jar), None).await;
    assert!(list.body.contains("Ada"));
    let shares = h.device_json(Method::GET, "/v1/shares", &token, None).await;
    assert!(shares.body.contains(&provider.to_string()));
    h.device_json(
        Method::DELETE,
        &format!("/v1/shares/{provider}"),
        &token,
        None,
    )
    .await;
    assert_eq!(
        h.get(&page, Some(&jar), None).await.status,
        StatusCode::NOT_FOUND
    );
    let list = h.get("/provider/patients", Some(&jar), None).await;
    assert!(!list.body.contains("Ada"));
    // Unsharing again, or a provider never shared with, is unknown.
    let again = h
        .device_json(
            Method::DELETE,
            &format!("/v1/shares/{provider}"),
            &token,
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn wrong_rotated_and_disabled_share_codes_get_one_answer() {
    let h = sqlite().await;
    let (_, token) = h.patient("Ada").await;
    let (rotated, old_code, _) = h.provider("Dr Rotated").await;
    admin::rotate_share_code(&h.storage, rotated).await.unwrap();
    let (disabled, disabled_code, _) = h.provider("Dr Disabled").await;
    admin::disable_provider(&h.storage, disabled, Utc::now())
        .await
        .unwrap();
    let answers: Vec<(StatusCode, String)> = {
        let mut all = Vec::new();
        for code in [
            "ZZZZ-ZZZZ-ZZZZ",
            old_code.as_str(),
            disabled_code.as_str(),
            "not a code",
        ] {
            let a = h.share(&token, code).await;
            all.push((a.status, a.body));
        }
        all
    };
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body, &answers[0].1);
        assert!(body.contains("share_code"), "{body}");
    }
}

#[tokio::test]
async fn forms_without_their_csrf_token_are_refused() {
    let h = sqlite().await;
    let (_, _, email) = h.provider("Dr Alpha").await;
    let jar = Jar::default();
    let no_token = h
        .form(
            "/provider/login",
            &jar,
            &[("email", &email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    // A token that does not match the cookie is refused too.
    let mut jar = Jar::default();
    let page = h.get("/provider/login", None, None).await;
    jar.take(&page);
    let forged = h
        .form(
            "/provider/login",
            &jar,
            &[
                ("csrf", &"0".repeat(64)),
                ("email", &email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // Sign-out is a form too.
    let signed_in = h.sign_in(&email).await;
    let out = h.form("/provider/logout", &signed_in, &[]).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    assert_eq!(
        h.get("/provider/patients", Some(&signed_in), None)
            .await
            .status,
        StatusCode::OK
    );
    let csrf = signed_in.get("hd_csrf").unwrap().to_string();
    let out = h
        .form("/provider/logout", &signed_in, &[("csrf", &csrf)])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    // The old session cookie is dead, not only forgotten by the browser.
    assert_eq!(
        h.get("/provider/patients", Some(&signed_in), None)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn session_cookies_are_httponly_and_strict() {
    let h = sqlite().await;
    let (_, _, email) = h.provider("Dr Alpha").await;
    let mut jar = Jar::default();
    let answer = h
        .submit(
            "/provider/login",
            &mut jar,
            &[("email", &email), ("password", PASSWORD)],
        )
        .await;
    let cookie = answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("hd_session="))
        .unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    // Plain HTTP here: Secure is only set under TLS (see the binary test).
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn wrong_passwords_are_locked_out_without_saying_which_part_was_wrong() {
    let h = sqlite().await;
    let (_, _, email) = h.provider("Dr Alpha").await;
    let mut jar = Jar::default();
    let wrong_password = h
        .submit(
            "/provider/login",
            &mut jar,
            &[("email", &email), ("password", "wrong password 1")],
        )
        .await;
    let wrong_email = h
        .submit(
            "/provider/login",
            &mut jar,
            &[("email", "nobody@clinic.test"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_email.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.body, wrong_email.body);
    let mut statuses = Vec::new();
    for i in 2..=6 {
        let answer = h
            .submit(
                "/provider/login",
                &mut jar,
                &[
                    ("email", &email),
                    ("password", &format!("wrong password {i}")),
                ],
            )
            .await;
        statuses.push(answer.status);
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = answer.headers[header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(wait > 0);
        }
    }
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
    // Locked: even the right password waits.
    let right = h
        .submit(
            "/provider/login",
            &mut jar,
            &[("email", &email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn diary_text_is_escaped_on_every_page() {
    let h = sqlite().await;
    let (patient, token) = h.patient("<b>Ada</b>").await;
    let (_, code, email) = h.provider("Dr \"Alpha\" <i>").await;
    h.share(&token, &code).await;
    let device_id: Uuid = token.split('.').nth(1).unwrap().parse().unwrap();
    let hostile = r#"<script>alert(1)</script>"><img src=x onerror=alert(2)>"#;
    let entry = Uuid::now_v7();
    let now_ms = Utc::now().timestamp_millis() as u64;
    let push = json!({"ops": [{
        "entry_id": entry, "device_id": device_id, "device_seq": 1,
        "hlc": heeldiary_core::Hlc { wall_ms: now_ms, counter: 0, node: device_id }.to_string(),
        "patch": {"day": Utc::now().date_naive().to_string(),
                  "recorded_at": format!("{}T08:00:00.000+00:00", Utc::now().date_naive()),
                  "first_step_pain": 5, "note": hostile}
    }]});
    let pushed = h
        .device_json(Method::POST, "/v1/push", &token, Some(push))
        .await;
    assert_eq!(pushed.status, StatusCode::OK, "{}", pushed.body);
    let jar = h.sign_in(&email).await;
    for path in [
        format!("/provider/patients/{patient}"),
        format!("/provider/patients/{patient}/report"),
        "/provider/patients".to_string(),
    ] {
        let page = h.get(&path, Some(&jar), None).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains("<script>alert"), "{path}");
        assert!(!page.body.contains("<img src=x"), "{path}");
        assert!(!page.body.contains("<b>Ada"), "{path}");
        assert!(page.body.contains("&lt;b&gt;Ada"), "{path}");
    }
    let page = h
        .get(&format!("/provider/patients/{patient}"), Some(&jar), None)
        .await;
    assert!(page.body.contains("&lt;script&gt;alert(1)"));
    assert!(page.body.contains("<svg"));
    assert!(page.body.contains("figcaption"));
}
