//! The agent's one HTTP client: every call to the CA (step-ca or hostcert-server) goes through
//! this module.
//!
//! Trust: [`fetch_root`] is the only call made without checking the TLS chain, and it accepts
//! the answer only when SHA-256 of the returned root's DER equals the fingerprint the operator
//! gave. Every other call goes through a [`Client`] that trusts exactly that stored root: no
//! system roots, so a TLS certificate from any other CA fails the handshake.
//!
//! Failures map to distinct errors (and exit codes): no answer, a timeout or a 5xx/429 is
//! [`Error::Unavailable`] (retry later); a 4xx is [`Error::Refused`] with the CA's message; a TLS
//! certificate that does not chain to the pinned root, or a wrong fingerprint, is
//! [`Error::Untrusted`].
//!
//! Clock skew: tokens and certificates are checked against the CA's clock, so every answer's
//! `Date` header is compared with the local clock. A refusal while the clocks differ by more than
//! the token leeway says so, since "token not yet valid" is otherwise a riddle.

use std::cell::Cell;
use std::time::{Duration, SystemTime};

use hostcert_proto::api::{self, paths, CertificateResponse, ErrorBody, SshRootsResponse};
use hostcert_proto::inventory::{self, HostRecord, RegisterRequest, UnregisterRequest};
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use ssh_key::Certificate;

use crate::error::{Error, Result};

/// Clock difference with the CA beyond which hostcert warns: the CA's token leeway.
pub const MAX_SKEW_SECS: u64 = hostcert_proto::LEEWAY_SECS;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(60);

/// Checks and normalises a CA URL: `https://host[:port]`, no trailing slash.
pub fn normalize_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Error::BadInput(format!("CA URL {url:?} is not a URL: {e}")))?;
    if parsed.scheme() != "https" || parsed.host_str().is_none() {
        return Err(Error::BadInput(format!(
            "CA URL {url:?} must be https://HOST[:PORT]"
        )));
    }
    Ok(url.to_string())
}

/// Fetches the root certificate with `fingerprint` from the CA at `ca_url` without trusting the
/// TLS chain, and accepts it only if SHA-256 of its DER is that fingerprint. Returns the PEM.
pub fn fetch_root(ca_url: &str, fingerprint: &str) -> Result<String> {
    let http = builder()
        .danger_accept_invalid_certs(true)
        .build()
        .map_err(|e| Error::Unavailable(format!("cannot build the HTTPS client: {e}")))?;
    let client = Client::with_http(ca_url, http);
    let url = format!("{}{}", client.base, paths::root(fingerprint));
    let (status, body) = client.send(client.http.get(&url), "fetching the root")?;
    if status == StatusCode::NOT_FOUND {
        return Err(Error::Untrusted(format!(
            "{ca_url} has no root with fingerprint {fingerprint}: check the fingerprint"
        )));
    }
    let root: api::RootResponse = client.decode(status, &body, "fetching the root")?;
    let der = pem_to_der(&root.ca)?;
    let got = api::fingerprint_der(&der);
    if got != fingerprint {
        return Err(Error::Untrusted(format!(
            "the root {ca_url} sent has fingerprint {got}, not {fingerprint}"
        )));
    }
    Ok(root.ca)
}

/// The DER of the first certificate in `pem`.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|der| der.to_vec())
        .map_err(|e| Error::BadInput(format!("not a PEM certificate: {e}")))
}

fn builder() -> reqwest::blocking::ClientBuilder {
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TIMEOUT)
        .user_agent(concat!("hostcert/", env!("CARGO_PKG_VERSION")))
}

/// A client of one CA that trusts only its pinned root.
#[derive(Debug)]
pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
    /// Local clock minus the CA's, from the last answer's `Date` header.
    skew: Cell<Option<i64>>,
}

impl Client {
    /// A client of the CA at `ca_url` whose TLS certificate must chain to `root_pem`.
    pub fn new(ca_url: &str, root_pem: &str) -> Result<Client> {
        let root = reqwest::Certificate::from_pem(root_pem.as_bytes())
            .map_err(|e| Error::BadInput(format!("the pinned root is not a certificate: {e}")))?;
        let http = builder()
            .add_root_certificate(root)
            .build()
            .map_err(|e| Error::Unavailable(format!("cannot build the HTTPS client: {e}")))?;
        Ok(Client::with_http(ca_url, http))
    }

    fn with_http(ca_url: &str, http: reqwest::blocking::Client) -> Client {
        Client {
            http,
            base: ca_url.trim_end_matches('/').to_string(),
            skew: Cell::new(None),
        }
    }

    /// The CA URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The SSHPOP audience for a call to `path` on this CA.
    pub fn audience(&self, path: &str) -> String {
        hostcert_proto::sshpop::audience(&self.base, path)
    }

    /// Local clock minus the CA's clock in seconds, as of the last answer (None before any).
    pub fn skew(&self) -> Option<i64> {
        self.skew.get()
    }

    /// `GET /health`.
    pub fn health(&self) -> Result<()> {
        let _: api::HealthResponse = self.get(paths::HEALTH, "health check")?;
        Ok(())
    }

    /// `GET /ssh/roots`: the SSH host and user CA keys.
    pub fn ssh_roots(&self) -> Result<SshRootsResponse> {
        self.get(paths::SSH_ROOTS, "fetching the SSH CA keys")
    }

    /// `POST /ssh/sign`.
    pub fn sign(&self, request: &api::SignRequest) -> Result<Certificate> {
        self.certificate(paths::SSH_SIGN, request, "signing")
    }

    /// `POST /ssh/renew` with an SSHPOP token.
    pub fn renew(&self, ott: String) -> Result<Certificate> {
        self.certificate(paths::SSH_RENEW, &api::RenewRequest { ott }, "renewing")
    }

    /// `POST /ssh/rekey` with an SSHPOP token and the new key (base64 blob).
    pub fn rekey(&self, ott: String, public_key: String) -> Result<Certificate> {
        let request = api::RekeyRequest { ott, public_key };
        self.certificate(paths::SSH_REKEY, &request, "rekeying")
    }

    /// `POST /hosts/register`.
    pub fn register(&self, request: &RegisterRequest) -> Result<HostRecord> {
        let what = "registering";
        let (status, body) = self.send(self.post(paths::HOSTS_REGISTER, request), what)?;
        self.decode(status, &body, what)
    }

    /// `POST /hosts/unregister`; `None` when the CA does not know the host.
    pub fn unregister(&self, request: &UnregisterRequest) -> Result<Option<String>> {
        let what = "unregistering";
        let (status, body) = self.send(self.post(paths::HOSTS_UNREGISTER, request), what)?;
        if status == StatusCode::NOT_FOUND {
            let error: Option<ErrorBody> = serde_json::from_slice(&body).ok();
            if error.and_then(|e| e.code).as_deref() == Some(inventory::CODE_NOT_REGISTERED) {
                return Ok(None);
            }
        }
        let answer: inventory::UnregisterResponse = self.decode(status, &body, what)?;
        Ok(Some(answer.hostname))
    }

    fn certificate<T: serde::Serialize>(
        &self,
        path: &str,
        request: &T,
        what: &str,
    ) -> Result<Certificate> {
        let (status, body) = self.send(self.post(path, request), what)?;
        let answer: CertificateResponse = self.decode(status, &body, what)?;
        api::decode_certificate(&answer.crt).map_err(|e| {
            Error::Untrusted(format!(
                "{what}: the CA answered a malformed certificate: {e}"
            ))
        })
    }

    fn get<T: DeserializeOwned>(&self, path: &str, what: &str) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let (status, body) = self.send(self.http.get(url), what)?;
        self.decode(status, &body, what)
    }

    fn post<T: serde::Serialize>(&self, path: &str, body: &T) -> RequestBuilder {
        self.http.post(format!("{}{path}", self.base)).json(body)
    }

    fn send(&self, request: RequestBuilder, what: &str) -> Result<(StatusCode, Vec<u8>)> {
        let response = request
            .send()
            .map_err(|e| transport_error(&self.base, what, &e))?;
        self.note_date(&response);
        let status = response.status();
        let body = response
            .bytes()
            .map_err(|e| transport_error(&self.base, what, &e))?;
        Ok((status, body.to_vec()))
    }

    fn note_date(&self, response: &Response) {
        let date = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        if let Some(date) = date {
            let skew = skew_secs(SystemTime::now(), date);
            // Once per client: every answer carries the same news.
            if skew.unsigned_abs() > MAX_SKEW_SECS && self.skew.get().is_none() {
                tracing::warn!("{}", skew_message(skew));
            }
            self.skew.set(Some(skew));
        }
    }

    fn decode<T: DeserializeOwned>(
        &self,
        status: StatusCode,
        body: &[u8],
        what: &str,
    ) -> Result<T> {
        if status.is_success() {
            return serde_json::from_slice(body).map_err(|e| {
                Error::BadInput(format!(
                    "{what}: {} does not answer like a step-ca CA: {e}",
                    self.base
                ))
            });
        }
        let message = serde_json::from_slice::<ErrorBody>(body)
            .map(|e| e.message)
            .unwrap_or_else(|_| {
                String::from_utf8_lossy(body)
                    .trim()
                    .chars()
                    .take(200)
                    .collect()
            });
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Error::Unavailable(format!(
                "{what}: {} answered {status}: {message}",
                self.base
            )));
        }
        let mut message = format!("{what}: {message}");
        if let Some(skew) = self.skew.get().filter(|s| s.unsigned_abs() > MAX_SKEW_SECS) {
            message.push_str(&format!(" ({})", skew_message(skew)));
        }
        Err(Error::Refused {
            status: status.as_u16(),
            message,
        })
    }
}

/// Local time minus the CA's `Date`, in whole seconds.
pub fn skew_secs(local: SystemTime, ca: SystemTime) -> i64 {
    match local.duration_since(ca) {
        Ok(ahead) => ahead.as_secs() as i64,
        Err(behind) => -(behind.duration().as_secs() as i64),
    }
}

/// What to tell the operator about a clock difference.
pub fn skew_message(skew: i64) -> String {
    let way = if skew > 0 { "ahead of" } else { "behind" };
    format!(
        "clock skew: this host's clock is {}s {way} the CA's (its Date header); tokens and \
         certificates are checked against the CA's time: fix the clock (NTP) and retry",
        skew.unsigned_abs()
    )
}

/// Classifies a failed exchange: a TLS certificate problem means the CA is not the pinned one;
/// everything else is worth retrying later.
fn transport_error(base: &str, what: &str, error: &reqwest::Error) -> Error {
    let mut detail = error.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = source {
        detail.push_str(": ");
        detail.push_str(&e.to_string());
        source = e.source();
    }
    // hyper-util boxes the TLS error behind an io::Error that hides its type: rustls's own
    // wording for a certificate it refused is what is left to recognise it by.
    let tls = detail
        .find("invalid peer certificate")
        .map(|at| detail[at..].to_string());
    match tls {
        Some(why) => Error::Untrusted(format!(
            "{what}: the TLS certificate of {base} does not chain to the pinned root ({why}); \
             if the CA was re-created, run `hostcert bootstrap` with its new fingerprint"
        )),
        None => Error::Unavailable(format!("{what}: {detail}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_from_date_header() {
        let ca = httpdate::parse_http_date("Fri, 04 Dec 2026 16:00:00 GMT").unwrap();
        let local = ca + Duration::from_secs(300);
        assert_eq!(skew_secs(local, ca), 300);
        assert_eq!(skew_secs(ca, local), -300);
        assert_eq!(skew_secs(ca, ca), 0);
        let msg = skew_message(300);
        assert!(msg.contains("300s ahead of the CA's"), "{msg}");
        assert!(skew_message(-90).contains("90s behind"));
    }

    #[test]
    fn urls_must_be_https() {
        assert_eq!(
            normalize_url("https://ca.test:8443/").unwrap(),
            "https://ca.test:8443"
        );
        assert!(normalize_url("http://ca.test").is_err());
        assert!(normalize_url("ca.test").is_err());
    }

    #[test]
    fn refusals_mention_a_skewed_clock() {
        let client = Client::with_http("https://ca.test", reqwest::blocking::Client::new());
        let body = br#"{"status":401,"message":"token not valid yet"}"#;
        client.skew.set(Some(-400));
        let err = client
            .decode::<api::HealthResponse>(StatusCode::UNAUTHORIZED, body, "signing")
            .unwrap_err();
        assert!(matches!(err, Error::Refused { status: 401, .. }));
        assert!(err.to_string().contains("400s behind"), "{err}");
        client.skew.set(Some(2));
        let err = client
            .decode::<api::HealthResponse>(StatusCode::UNAUTHORIZED, body, "signing")
            .unwrap_err();
        assert!(!err.to_string().contains("skew"), "{err}");
        let err = client
            .decode::<api::HealthResponse>(StatusCode::SERVICE_UNAVAILABLE, b"", "signing")
            .unwrap_err();
        assert!(matches!(err, Error::Unavailable(_)));
    }
}
