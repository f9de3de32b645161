//! Token checks that need the server's identity: audiences, issuer, and the CA signature on
//! SSHPOP certificates.

use hostcert_proto::api::paths;
use hostcert_proto::{ott, sshpop};
use ssh_key::certificate::CertType;
use ssh_key::Certificate;

use crate::ca::CaKey;

/// Why a token was refused (all are answered 401).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Malformed, badly signed, expired, not yet valid.
    #[error(transparent)]
    Token(#[from] hostcert_proto::TokenError),
    /// Claims that do not fit this server or this call.
    #[error("{0}")]
    Claims(String),
}

/// The server's names and keys that tokens are checked against.
pub struct Checker {
    /// Lowercased names a token's audience host may be.
    pub hosts: Vec<String>,
    /// JWK provisioner name (OTT `iss`).
    pub provisioner: String,
    /// OTT signature check.
    pub ott: ott::OttVerifier,
}

/// The host part of an `https://host[:port]/path` URL's authority, lowercased.
fn audience_host(authority: &str) -> String {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.to_ascii_lowercase()
}

impl Checker {
    /// Whether `aud` is `https://<one of our names>[:port][/1.0]<path>[#fragment]`.
    fn audience_ok(&self, aud: &str, path: &str, fragment: Option<&str>) -> bool {
        let (url, frag) = match aud.split_once('#') {
            Some((u, f)) => (u, Some(f)),
            None => (aud, None),
        };
        if frag != fragment {
            return false;
        }
        let Some(rest) = url.strip_prefix("https://") else {
            return false;
        };
        let (authority, url_path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let host = audience_host(authority);
        self.hosts.contains(&host) && (url_path == path || url_path == paths::versioned(path))
    }

    /// Verifies a sign token (signature, times, issuer, audience) and returns its claims.
    pub fn sign_token(&self, token: &str, now: u64) -> Result<ott::Claims, AuthError> {
        let claims = self.ott.verify(token, now)?;
        if claims.registered.iss != self.provisioner {
            return Err(AuthError::Claims(format!(
                "token issuer {:?} is not a provisioner of this CA",
                claims.registered.iss
            )));
        }
        if !self.audience_ok(&claims.registered.aud, paths::SSH_SIGN, None) {
            return Err(AuthError::Claims(format!(
                "token audience {:?} is not this CA's sign endpoint",
                claims.registered.aud
            )));
        }
        Ok(claims)
    }

    /// Verifies an SSHPOP token for `path`: signed by the certificate's key, the certificate a
    /// current host certificate from `host_ca`, the audience this server and call.
    pub fn sshpop_token(
        &self,
        token: &str,
        path: &str,
        host_ca: &CaKey,
        now: u64,
    ) -> Result<(Certificate, sshpop::Claims), AuthError> {
        let (cert, claims) = sshpop::verify(token, now)?;
        if cert.cert_type() != CertType::Host {
            return Err(AuthError::Claims(
                "the SSHPOP certificate is not a host certificate".into(),
            ));
        }
        // Signature and CA key only; the time checks follow with clearer messages.
        if cert
            .validate_at(cert.valid_after(), [host_ca.fingerprint()])
            .is_err()
        {
            return Err(AuthError::Claims(
                "the SSHPOP certificate was not issued by this CA".into(),
            ));
        }
        if now < cert.valid_after() {
            return Err(AuthError::Claims(
                "the SSHPOP certificate is not valid yet".into(),
            ));
        }
        if now >= cert.valid_before() {
            return Err(AuthError::Claims(format!(
                "certificate {} expired at {}",
                cert.serial(),
                crate::timespec::rfc3339(cert.valid_before())
            )));
        }
        let fragment = format!("sshpop/{}", sshpop::PROVISIONER);
        if !self.audience_ok(&claims.aud, path, Some(&fragment)) {
            return Err(AuthError::Claims(format!(
                "token audience {:?} is not this CA's {path} endpoint",
                claims.aud
            )));
        }
        Ok((cert, claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker() -> Checker {
        let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        Checker {
            hosts: vec!["ca.test".into(), "127.0.0.1".into(), "::1".into()],
            provisioner: "jwk".into(),
            ott: ott::OttVerifier::new(*key.verifying_key()),
        }
    }

    #[test]
    fn audiences() {
        let c = checker();
        assert!(c.audience_ok("https://ca.test/1.0/ssh/sign", "/ssh/sign", None));
        assert!(c.audience_ok("https://CA.test:8443/ssh/sign", "/ssh/sign", None));
        assert!(c.audience_ok("https://127.0.0.1:1/1.0/ssh/sign", "/ssh/sign", None));
        assert!(c.audience_ok("https://[::1]:1/1.0/ssh/sign", "/ssh/sign", None));
        assert!(c.audience_ok(
            "https://ca.test/1.0/ssh/renew#sshpop/sshpop",
            "/ssh/renew",
            Some("sshpop/sshpop")
        ));
        assert!(!c.audience_ok(
            "https://ca.test/1.0/ssh/renew",
            "/ssh/renew",
            Some("sshpop/sshpop")
        ));
        assert!(!c.audience_ok(
            "https://ca.test/1.0/ssh/rekey#sshpop/sshpop",
            "/ssh/renew",
            Some("sshpop/sshpop")
        ));
        assert!(!c.audience_ok("https://evil.test/1.0/ssh/sign", "/ssh/sign", None));
        assert!(!c.audience_ok("http://ca.test/1.0/ssh/sign", "/ssh/sign", None));
        assert!(!c.audience_ok("https://ca.test.evil/1.0/ssh/sign", "/ssh/sign", None));
    }
}
