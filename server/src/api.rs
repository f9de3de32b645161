//! HTTP handlers: the step-ca API subset (each path also under `/1.0`) and the inventory API.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hostcert_proto::api::{self as wire, paths, CERT_TYPE_HOST};
use hostcert_proto::inventory::{self, HostsResponse, RegisterRequest, UnregisterRequest};
use hostcert_proto::tags;
use rusqlite::Connection;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use ssh_key::certificate::CertType;
use ssh_key::public::KeyData;
use ssh_key::Certificate;

use crate::auth::{AuthError, Checker};
use crate::ca::{self, CaKey, CertSpec, Policy};
use crate::timespec;
use crate::writer::{Auth, Done, Job, NewCert, Refused, Registration, Sshpop, Writer};

/// Everything the handlers share.
pub struct AppState {
    /// Token checks.
    pub checker: Checker,
    /// Signs host certificates.
    pub host_ca: CaKey,
    /// Host certificate lifetimes.
    pub policy: Policy,
    /// Root certificate, PEM.
    pub root_pem: String,
    /// Its fingerprint (lowercase hex).
    pub root_fingerprint: String,
    /// `/ssh/roots` answer.
    pub ssh_roots: wire::SshRootsResponse,
    /// SHA-256 of the admin credential (compared as digests, not as secrets).
    pub admin_digest: [u8; 32],
    /// Group-commit writer.
    pub writer: Writer,
    /// Connection for reads.
    pub reader: Mutex<Connection>,
}

/// An error answer: `{"status": ..., "message": ...}` (plus `code` for inventory cases).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    code: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            code: None,
        }
    }
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }
    fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }
    fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        ApiError::unauthorized(e.to_string())
    }
}

impl From<Refused> for ApiError {
    fn from(e: Refused) -> ApiError {
        let message = e.to_string();
        match e {
            Refused::Replay | Refused::Revoked(_) | Refused::Enrollment(_) => {
                ApiError::unauthorized(message)
            }
            Refused::UnknownBastion(_) => ApiError {
                code: Some(inventory::CODE_UNKNOWN_BASTION),
                ..ApiError::bad_request(message)
            },
            Refused::NotRegistered(_) => ApiError {
                code: Some(inventory::CODE_NOT_REGISTERED),
                ..ApiError::new(StatusCode::NOT_FOUND, message)
            },
            Refused::Closed => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message),
            Refused::Db(e) => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status != StatusCode::NOT_FOUND || self.code.is_some() {
            tracing::info!(status = self.status.as_u16(), "refused: {}", self.message);
        }
        let body = wire::ErrorBody {
            status: self.status.as_u16(),
            message: self.message,
            code: self.code.map(str::to_string),
        };
        (self.status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn answer<T: Serialize>(status: StatusCode, body: &T) -> ApiResult {
    Ok((status, Json(body)).into_response())
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// Runs a read on the reader connection off the async threads.
async fn read<T, F>(state: &Arc<AppState>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
{
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let conn = state.reader.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

/// The API router.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route(paths::HEALTH, get(health))
        .route("/root/{fingerprint}", get(root))
        .route(paths::ROOTS, get(roots))
        .route(paths::SSH_ROOTS, get(ssh_roots))
        .route(paths::SSH_SIGN, post(ssh_sign))
        .route(paths::SSH_RENEW, post(ssh_renew))
        .route(paths::SSH_REKEY, post(ssh_rekey))
        .route(paths::SSH_HOSTS, get(ssh_hosts))
        .route(paths::SSH_CHECK_HOST, post(check_host))
        .route(paths::HOSTS, get(list_hosts))
        .route(paths::HOSTS_REGISTER, post(register))
        .route(paths::HOSTS_UNREGISTER, post(unregister));
    Router::new()
        .merge(api.clone())
        .nest(paths::API_PREFIX, api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

async fn health() -> ApiResult {
    answer(
        StatusCode::OK,
        &wire::HealthResponse {
            status: "ok".into(),
        },
    )
}

async fn root(State(s): State<Arc<AppState>>, Path(fp): Path<String>) -> ApiResult {
    match wire::normalize_fingerprint(&fp) {
        Some(fp) if fp == s.root_fingerprint => answer(
            StatusCode::OK,
            &wire::RootResponse {
                ca: s.root_pem.clone(),
            },
        ),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no root with fingerprint {fp}"),
        )),
    }
}

async fn roots(State(s): State<Arc<AppState>>) -> ApiResult {
    // step-ca answers this GET with 201; clients depend on the exact code.
    answer(
        StatusCode::CREATED,
        &wire::RootsResponse {
            crts: vec![s.root_pem.clone()],
        },
    )
}

async fn ssh_roots(State(s): State<Arc<AppState>>) -> ApiResult {
    answer(StatusCode::OK, &s.ssh_roots)
}

/// The identity and authorisation of a certificate to issue.
struct Issue {
    key_id: String,
    principals: Vec<String>,
    public_key: KeyData,
    window: (u64, u64),
    auth: Auth,
    renews: Option<u64>,
}

/// Signs, records durably, answers 201 `{"crt": ...}`.
async fn issue(s: &AppState, req: Issue, now: u64) -> ApiResult {
    let mut principals: Vec<String> = Vec::with_capacity(req.principals.len());
    for p in req.principals {
        if !principals.contains(&p) {
            principals.push(p);
        }
    }
    let serial = ca::new_serial();
    let cert = ca::sign(
        &s.host_ca,
        &CertSpec {
            cert_type: CertType::Host,
            serial,
            key_id: &req.key_id,
            principals: &principals,
            valid_after: req.window.0,
            valid_before: req.window.1,
            public_key: &req.public_key,
        },
    )
    .map_err(|e| ApiError::bad_request(format!("cannot sign: {e}")))?;
    let crt = wire::encode_blob(&cert.to_bytes().map_err(ApiError::internal)?);
    let record = NewCert {
        serial,
        cert_type: CERT_TYPE_HOST,
        key_id: req.key_id,
        principals,
        valid_after: req.window.0,
        valid_before: req.window.1,
        renews: req.renews,
    };
    s.writer.submit(Job::Issue(req.auth, record), now).await?;
    tracing::debug!(serial, key_id = cert.key_id(), "issued host certificate");
    answer(StatusCode::CREATED, &wire::CertificateResponse { crt })
}

fn public_key(b64: &str) -> Result<KeyData, ApiError> {
    wire::decode_public_key(b64)
        .map(|k| k.key_data().clone())
        .map_err(|e| ApiError::bad_request(format!("publicKey: {e}")))
}

fn instant(value: &str, fallback: &str, now: u64) -> Result<Option<u64>, ApiError> {
    let value = if value.trim().is_empty() {
        fallback
    } else {
        value
    };
    timespec::parse_instant(value, now).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn ssh_sign(State(s): State<Arc<AppState>>, body: Bytes) -> ApiResult {
    let req: wire::SignRequest = parse(&body)?;
    let now = hostcert_proto::now();
    let claims = s.checker.sign_token(&req.ott, now)?;
    let ssh = &claims.step.ssh;
    if ssh.cert_type != CERT_TYPE_HOST {
        return Err(ApiError::forbidden(
            "this CA signs only host certificates through the API",
        ));
    }
    if !req.cert_type.is_empty() && req.cert_type != ssh.cert_type {
        return Err(ApiError::forbidden(format!(
            "certType {:?} does not match the token's {:?}",
            req.cert_type, ssh.cert_type
        )));
    }
    let (key_id, principals, auth) = match &claims.enrollment {
        Some(enrollment) => {
            let Some(first) = req.principals.first() else {
                return Err(ApiError::bad_request(
                    "a fleet enrollment token needs the principals in the request",
                ));
            };
            let key_id = if req.key_id.is_empty() {
                first.clone()
            } else {
                req.key_id.clone()
            };
            if let Some(bad) = std::iter::once(&key_id)
                .chain(&req.principals)
                .find(|p| !ca::pattern_matches(&enrollment.pattern, p))
            {
                return Err(ApiError::forbidden(format!(
                    "principal {bad:?} does not match the enrollment token's pattern {:?}",
                    enrollment.pattern
                )));
            }
            let auth = Auth::Enrollment {
                id: claims.registered.jti.clone(),
            };
            (key_id, req.principals.clone(), auth)
        }
        None => {
            if let Some(bad) = req.principals.iter().find(|p| !ssh.principals.contains(p)) {
                return Err(ApiError::forbidden(format!(
                    "principal {bad:?} is not allowed by the token"
                )));
            }
            let principals = if req.principals.is_empty() {
                ssh.principals.clone()
            } else {
                req.principals.clone()
            };
            let key_id = match (&ssh.key_id, principals.first()) {
                (k, _) if !k.is_empty() => k.clone(),
                (_, Some(first)) => first.clone(),
                _ => return Err(ApiError::unauthorized("the token names no principal")),
            };
            let auth = Auth::Ott {
                jti: claims.registered.jti.clone(),
                exp: claims.registered.exp,
            };
            (key_id, principals, auth)
        }
    };
    let after = instant(&req.valid_after, &ssh.valid_after, now)?;
    let before = instant(&req.valid_before, &ssh.valid_before, now)?;
    let window = s
        .policy
        .window(now, after, before)
        .map_err(ApiError::bad_request)?;
    let public_key = public_key(&req.public_key)?;
    issue(
        &s,
        Issue {
            key_id,
            principals,
            public_key,
            window,
            auth,
            renews: None,
        },
        now,
    )
    .await
}

fn sshpop_proof(cert: &Certificate, claims: &hostcert_proto::sshpop::Claims) -> Sshpop {
    Sshpop {
        jti: claims.jti.clone(),
        exp: claims.exp,
        serial: cert.serial(),
    }
}

async fn ssh_renew(State(s): State<Arc<AppState>>, body: Bytes) -> ApiResult {
    let req: wire::RenewRequest = parse(&body)?;
    reissue(&s, &req.ott, paths::SSH_RENEW, None).await
}

async fn ssh_rekey(State(s): State<Arc<AppState>>, body: Bytes) -> ApiResult {
    let req: wire::RekeyRequest = parse(&body)?;
    let new_key = public_key(&req.public_key)?;
    reissue(&s, &req.ott, paths::SSH_REKEY, Some(new_key)).await
}

/// Renew (`new_key` None: same key, supersedes the presented serial) and rekey (a new key; the
/// presenting certificate stays valid, since agents certify their other host keys this way):
/// a certificate for the SSHPOP-presented certificate's key ID and principals.
async fn reissue(s: &AppState, ott: &str, path: &str, new_key: Option<KeyData>) -> ApiResult {
    let now = hostcert_proto::now();
    let (cert, claims) = s.checker.sshpop_token(ott, path, &s.host_ca, now)?;
    let window = s
        .policy
        .window(now, None, None)
        .map_err(ApiError::bad_request)?;
    let renews = new_key.is_none().then(|| cert.serial());
    let issue_req = Issue {
        key_id: cert.key_id().to_string(),
        principals: cert.valid_principals().to_vec(),
        public_key: new_key.unwrap_or_else(|| cert.public_key().clone()),
        window,
        auth: Auth::Sshpop(sshpop_proof(&cert, &claims)),
        renews,
    };
    issue(s, issue_req, now).await
}

async fn ssh_hosts(State(s): State<Arc<AppState>>) -> ApiResult {
    let now = hostcert_proto::now();
    let (registered, others) = read(&s, move |conn| {
        Ok((
            crate::db::list_hosts(conn, &Default::default())?,
            crate::db::certified_hosts_not_registered(conn, now)?,
        ))
    })
    .await?;
    let mut hosts: Vec<wire::SshHost> = registered
        .into_iter()
        .map(|h| wire::SshHost {
            hid: String::new(),
            host_tags: (!h.tags.is_empty()).then(|| {
                h.tags
                    .into_iter()
                    .map(|(name, value)| wire::HostTag {
                        id: name.clone(),
                        name,
                        value,
                    })
                    .collect()
            }),
            hostname: h.hostname,
        })
        .collect();
    hosts.extend(others.into_iter().map(|hostname| wire::SshHost {
        hid: String::new(),
        host_tags: None,
        hostname,
    }));
    hosts.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    answer(StatusCode::OK, &wire::SshHostsResponse { hosts })
}

async fn check_host(State(s): State<Arc<AppState>>, body: Bytes) -> ApiResult {
    let req: wire::CheckHostRequest = parse(&body)?;
    if req.cert_type != CERT_TYPE_HOST {
        return Err(ApiError::bad_request("type must be \"host\""));
    }
    let now = hostcert_proto::now();
    let exists = read(&s, move |conn| {
        crate::db::host_principal_exists(conn, &req.principal, now)
    })
    .await?;
    answer(StatusCode::OK, &wire::CheckHostResponse { exists })
}

/// The host name an SSHPOP-authenticated call acts on: the certificate's key ID by default,
/// otherwise it must be one of the certificate's principals.
fn own_hostname(cert: &Certificate, requested: Option<String>) -> Result<String, ApiError> {
    let name = requested.unwrap_or_else(|| cert.key_id().to_string());
    if name == cert.key_id() || cert.valid_principals().contains(&name) {
        Ok(name)
    } else {
        Err(ApiError::forbidden(format!(
            "certificate {} for {:?} may not act on host {name:?}",
            cert.serial(),
            cert.key_id()
        )))
    }
}

async fn register(State(s): State<Arc<AppState>>, body: Bytes) -> ApiResult {
    let req: RegisterRequest = parse(&body)?;
    tags::validate_map(&req.tags).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if req.is_bastion && req.bastion.is_some() {
        return Err(ApiError::bad_request(
            "is_bastion and bastion exclude each other",
        ));
    }
    let now = hostcert_proto::now();
    let (cert, claims) =
        s.checker
            .sshpop_token(&req.ott, paths::HOSTS_REGISTER, &s.host_ca, now)?;
    let hostname = own_hostname(&cert, req.hostname)?;
    if req.bastion.as_deref() == Some(hostname.as_str()) {
        return Err(ApiError::bad_request("a host cannot be its own bastion"));
    }
    let reg = Registration {
        hostname,
        tags: req.tags,
        is_bastion: req.is_bastion,
        bastion: req.bastion,
    };
    match s
        .writer
        .submit(Job::Register(sshpop_proof(&cert, &claims), reg), now)
        .await?
    {
        Done::Registered(record) => {
            tracing::info!(hostname = record.hostname, "registered");
            answer(StatusCode::CREATED, &record)
        }
        other => Err(ApiError::internal(format!(
            "unexpected writer result {other:?}"
        ))),
    }
}

async fn unregister(State(s): State<Arc<AppState>>, body: Bytes) -> ApiResult {
    let req: UnregisterRequest = parse(&body)?;
    let now = hostcert_proto::now();
    let (cert, claims) =
        s.checker
            .sshpop_token(&req.ott, paths::HOSTS_UNREGISTER, &s.host_ca, now)?;
    let hostname = own_hostname(&cert, req.hostname)?;
    s.writer
        .submit(
            Job::Unregister(sshpop_proof(&cert, &claims), hostname.clone()),
            now,
        )
        .await?;
    tracing::info!(hostname, "unregistered");
    answer(StatusCode::OK, &inventory::UnregisterResponse { hostname })
}

async fn list_hosts(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|c| <[u8; 32]>::from(Sha256::digest(c.trim().as_bytes())));
    if presented != Some(s.admin_digest) {
        return Err(ApiError::unauthorized(
            "GET /hosts needs the admin credential as a bearer token",
        ));
    }
    let query = query.unwrap_or_default();
    let filters: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| v.into_owned())
        .collect();
    let filter = tags::parse_all(&filters).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let hosts = read(&s, move |conn| crate::db::list_hosts(conn, &filter)).await?;
    answer(StatusCode::OK, &HostsResponse { hosts })
}
