//! SSHPOP tokens: proof of possession of a host certificate's private key.
//!
//! A compact JWS signed with the certificate's own key (ES256 for ECDSA P-256, EdDSA for
//! Ed25519) whose header carries the certificate (`sshpop` = standard base64 of its blob).
//! step-ca accepts it on `/ssh/renew` and `/ssh/rekey`; hostcert-server also on the inventory
//! calls. [`verify`] proves the token was signed by the certificate's key; the caller must still
//! check the certificate's CA signature and validity, revocation, `aud`, and `jti` reuse.

use serde::{Deserialize, Serialize};
use ssh_key::private::{EcdsaKeypair, KeypairData};
use ssh_key::public::{EcdsaPublicKey, KeyData};
use ssh_key::{Certificate, PrivateKey};

use crate::jws::{self, Alg, Es256Signer, Signer, Verifier};
use crate::TokenError;

/// Name of the SSHPOP provisioner, the `aud` fragment is `#sshpop/<name>`.
pub const PROVISIONER: &str = "sshpop";

/// How long an issued token is valid, in seconds.
pub const TOKEN_TTL_SECS: u64 = 300;

/// SSHPOP token claims: `iss` is `"sshpop"`, `aud` is [`audience`], `sub` the certificate
/// serial (decimal), `jti` random (servers refuse a replayed one).
pub type Claims = crate::Registered;

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    sshpop: String,
}

/// The audience for a call to `path` (e.g. [`crate::api::paths::SSH_RENEW`]) on the CA at
/// `ca_url` (`https://host:port`, trailing slash allowed).
pub fn audience(ca_url: &str, path: &str) -> String {
    format!(
        "{}{}{}#sshpop/{PROVISIONER}",
        ca_url.trim_end_matches('/'),
        crate::api::paths::API_PREFIX,
        path
    )
}

/// Issues a token for `audience` signed by `private_key`, which must be the key `cert` certifies.
pub fn issue(
    private_key: &PrivateKey,
    cert: &Certificate,
    audience: &str,
    now: u64,
) -> Result<String, TokenError> {
    if private_key.public_key().key_data() != cert.public_key() {
        return Err(TokenError::InvalidClaim(
            "the private key does not match the certificate".into(),
        ));
    }
    let header = |alg: Alg| -> Result<Header, TokenError> {
        Ok(Header {
            alg: alg.name().to_string(),
            typ: Some("JWT".to_string()),
            sshpop: crate::api::encode_blob(&cert.to_bytes()?),
        })
    };
    let claims = Claims::new(
        PROVISIONER,
        audience,
        &cert.serial().to_string(),
        crate::random_hex_id(),
        now,
        TOKEN_TTL_SECS,
    );
    match private_key.key_data() {
        KeypairData::Ecdsa(EcdsaKeypair::NistP256 { private, .. }) => {
            let key = p256::ecdsa::SigningKey::from_slice(private.as_slice())
                .map_err(|_| TokenError::Unsupported("invalid P-256 private key".into()))?;
            let key = Es256Signer::new(&key)?;
            jws::encode(&header(Alg::Es256)?, &claims, Signer::Es256(&key))
        }
        KeypairData::Ed25519(pair) => {
            let key = ed25519_dalek::SigningKey::try_from(pair)?;
            jws::encode(&header(Alg::EdDsa)?, &claims, Signer::EdDsa(&key))
        }
        other => Err(TokenError::Unsupported(format!(
            "{} keys cannot sign SSHPOP tokens (use ECDSA P-256 or Ed25519)",
            other.algorithm().map(|a| a.to_string()).unwrap_or_default()
        ))),
    }
}

fn verifier_for(key: &KeyData) -> Result<Verifier, TokenError> {
    match key {
        KeyData::Ecdsa(pk @ EcdsaPublicKey::NistP256(_)) => {
            Ok(Verifier::es256(&p256::ecdsa::VerifyingKey::try_from(pk)?))
        }
        KeyData::Ed25519(pk) => Ok(Verifier::EdDsa(ed25519_dalek::VerifyingKey::try_from(pk)?)),
        other => Err(TokenError::Unsupported(other.algorithm().to_string())),
    }
}

/// Decodes the certificate a token presents, without checking anything.
pub fn certificate_unverified(token: &str) -> Result<Certificate, TokenError> {
    let parts = jws::decode::<Header>(token)?;
    crate::api::decode_certificate(&parts.header.sshpop)
        .map_err(|e| TokenError::Malformed(format!("sshpop header: {e}")))
}

/// Checks that `token` is signed by the key of the certificate in its header, that `sub` is
/// that certificate's serial and that `nbf`/`exp` hold at `now` (1 minute leeway).
/// Returns the certificate and the claims; CA signature, certificate validity, revocation,
/// `aud` and `jti` are the caller's to check.
pub fn verify(token: &str, now: u64) -> Result<(Certificate, Claims), TokenError> {
    let parts = jws::decode::<Header>(token)?;
    let cert = crate::api::decode_certificate(&parts.header.sshpop)
        .map_err(|e| TokenError::Malformed(format!("sshpop header: {e}")))?;
    let key = verifier_for(cert.public_key())?;
    if parts.header.alg != key.alg().name() {
        return Err(TokenError::Unsupported(format!(
            "alg {} for a {} key",
            parts.header.alg,
            cert.public_key().algorithm()
        )));
    }
    let claims: Claims = parts.verify(&key)?;
    jws::check_times(claims.nbf, claims.exp, now)?;
    if claims.sub != cert.serial().to_string() {
        return Err(TokenError::InvalidClaim(
            "sub is not the certificate serial".into(),
        ));
    }
    Ok((cert, claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::certificate::{Builder, CertType};
    use ssh_key::Algorithm;

    fn cert_for(key: &PrivateKey, serial: u64) -> Certificate {
        let ca = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519).unwrap();
        let mut b = Builder::new_with_random_nonce(
            &mut rand_core::OsRng,
            key.public_key(),
            0,
            4_000_000_000,
        )
        .unwrap();
        b.serial(serial).unwrap();
        b.cert_type(CertType::Host).unwrap();
        b.key_id("h1").unwrap();
        b.valid_principal("h1").unwrap();
        b.sign(&ca).unwrap()
    }

    #[test]
    fn round_trip_ecdsa_and_ed25519() {
        for alg in [
            Algorithm::Ecdsa {
                curve: ssh_key::EcdsaCurve::NistP256,
            },
            Algorithm::Ed25519,
        ] {
            let key = PrivateKey::random(&mut rand_core::OsRng, alg).unwrap();
            let cert = cert_for(&key, 42);
            let aud = audience("https://ca.test:8443/", crate::api::paths::SSH_RENEW);
            assert_eq!(aud, "https://ca.test:8443/1.0/ssh/renew#sshpop/sshpop");
            let token = issue(&key, &cert, &aud, 1000).unwrap();
            let (got, claims) = verify(&token, 1010).unwrap();
            assert_eq!(got, cert);
            assert_eq!(claims.sub, "42");
            assert_eq!(claims.aud, aud);
            assert_eq!(certificate_unverified(&token).unwrap(), cert);
            assert!(matches!(
                verify(&token, 1000 + TOKEN_TTL_SECS + 61),
                Err(TokenError::Expired { .. })
            ));
        }
    }

    #[test]
    fn other_key_cannot_issue_or_forge() {
        let key = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519).unwrap();
        let other = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519).unwrap();
        let cert = cert_for(&key, 7);
        assert!(issue(&other, &cert, "a", 0).is_err());
        // A token signed by `other` for its own certificate, with `key`'s certificate swapped in.
        let other_cert = cert_for(&other, 7);
        let token = issue(&other, &other_cert, "a", 1000).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let good = issue(&key, &cert, "a", 1000).unwrap();
        let good_header = good.split('.').next().unwrap().to_string();
        parts[0] = &good_header;
        assert!(matches!(
            verify(&parts.join("."), 1000),
            Err(TokenError::BadSignature)
        ));
    }
}
