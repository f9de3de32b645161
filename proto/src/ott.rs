//! step-ca one-time tokens (OTT) for `/ssh/sign`, and hostcert's reusable fleet enrollment tokens.
//!
//! An OTT is a compact JWS signed ES256 by a JWK provisioner key; its header `kid` is the RFC 7638
//! thumbprint of the provisioner's public JWK. The certificate's type, key ID and principals come
//! from the `step.ssh` claims. A fleet enrollment token has the same shape, an empty principal
//! list and an extra `hostcert_enrollment` claim; its `jti` is the token ID the server counts uses
//! against (step-ca itself does not know these tokens).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::jws::{self, Alg, Es256Signer, Signer, Verifier};
use crate::TokenError;

/// The `step.ssh` claims: what the certificate will contain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SshClaims {
    /// `"host"` or `"user"`.
    #[serde(rename = "certType")]
    pub cert_type: String,
    /// Certificate key ID.
    #[serde(rename = "keyID")]
    pub key_id: String,
    /// Allowed principals (empty for fleet enrollment tokens: the pattern decides).
    #[serde(default)]
    pub principals: Vec<String>,
    /// Go duration or RFC 3339; `""` = unset.
    #[serde(rename = "validAfter", default)]
    pub valid_after: String,
    /// Go duration or RFC 3339; `""` = unset.
    #[serde(rename = "validBefore", default)]
    pub valid_before: String,
}

/// The `step` claim.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StepClaims {
    /// SSH certificate options.
    pub ssh: SshClaims,
}

/// hostcert's fleet enrollment claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentClaim {
    /// Glob every signed principal must match, e.g. `*.prod.example.com`.
    pub pattern: String,
}

/// The claims of a sign token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `iss` the provisioner name, `aud` `https://<ca host>/1.0/ssh/sign`, `sub` the host name
    /// (fleet tokens: the pattern), `jti` single use (fleet tokens: the enrollment token ID).
    #[serde(flatten)]
    pub registered: crate::Registered,
    /// Subject alternative names (the principals).
    #[serde(default)]
    pub sans: Vec<String>,
    /// step-ca's certificate options.
    pub step: StepClaims,
    /// Present only on hostcert fleet enrollment tokens.
    #[serde(
        rename = "hostcert_enrollment",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enrollment: Option<EnrollmentClaim>,
}

impl Claims {
    /// Claims for a single-use host sign token: key ID = `hostname`, principals = `hostname`
    /// followed by `extra_principals`, valid from `now` for `ttl_secs`, random `jti`.
    pub fn host(
        issuer: &str,
        audience: &str,
        hostname: &str,
        extra_principals: &[String],
        now: u64,
        ttl_secs: u64,
    ) -> Claims {
        let mut principals = vec![hostname.to_string()];
        principals.extend(extra_principals.iter().filter(|p| *p != hostname).cloned());
        Claims {
            registered: crate::Registered::new(
                issuer,
                audience,
                hostname,
                crate::random_hex_id(),
                now,
                ttl_secs,
            ),
            sans: principals.clone(),
            step: StepClaims {
                ssh: SshClaims {
                    cert_type: crate::api::CERT_TYPE_HOST.to_string(),
                    key_id: hostname.to_string(),
                    principals,
                    ..Default::default()
                },
            },
            enrollment: None,
        }
    }

    /// Claims for a reusable fleet enrollment token with ID `id`.
    pub fn enrollment(
        issuer: &str,
        audience: &str,
        id: &str,
        pattern: &str,
        now: u64,
        ttl_secs: u64,
    ) -> Claims {
        Claims {
            registered: crate::Registered::new(
                issuer,
                audience,
                pattern,
                id.to_string(),
                now,
                ttl_secs,
            ),
            sans: Vec::new(),
            step: StepClaims {
                ssh: SshClaims {
                    cert_type: crate::api::CERT_TYPE_HOST.to_string(),
                    ..Default::default()
                },
            },
            enrollment: Some(EnrollmentClaim {
                pattern: pattern.to_string(),
            }),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// RFC 7638 SHA-256 thumbprint of a P-256 public JWK (the provisioner `kid`).
pub fn jwk_thumbprint(key: &VerifyingKey) -> String {
    let point = key.to_encoded_point(false);
    let coord =
        |c: Option<&p256::FieldBytes>| URL_SAFE_NO_PAD.encode(c.map(|c| &c[..]).unwrap_or(&[]));
    // Members in lexicographic order, no whitespace, as RFC 7638 requires.
    let jwk = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        coord(point.x()),
        coord(point.y())
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.as_bytes()))
}

/// Signs `claims` with the provisioner key (ES256, `kid` = [`jwk_thumbprint`]).
/// To sign many tokens, build an [`OttSigner`] once.
pub fn issue(key: &SigningKey, claims: &Claims) -> Result<String, TokenError> {
    OttSigner::new(key)?.issue(claims)
}

/// Issues sign tokens with one provisioner key.
pub struct OttSigner {
    key: Es256Signer,
    kid: String,
}

impl OttSigner {
    /// A signer for the provisioner's private key.
    pub fn new(key: &SigningKey) -> Result<OttSigner, TokenError> {
        Ok(OttSigner {
            key: Es256Signer::new(key)?,
            kid: jwk_thumbprint(key.verifying_key()),
        })
    }

    /// Signs `claims` (ES256, `kid` = [`jwk_thumbprint`]).
    pub fn issue(&self, claims: &Claims) -> Result<String, TokenError> {
        let header = Header {
            alg: Alg::Es256.name().to_string(),
            kid: Some(self.kid.clone()),
            typ: Some("JWT".to_string()),
        };
        jws::encode(&header, claims, Signer::Es256(&self.key))
    }
}

/// Reads a token's claims **without** checking its signature or times: for clients that want
/// to report an expired or foreign token clearly before calling the CA.
pub fn decode_unverified(token: &str) -> Result<Claims, TokenError> {
    jws::decode::<Header>(token)?.claims_unverified()
}

/// Verifies sign tokens against one provisioner key.
pub struct OttVerifier {
    key: Verifier,
    kid: String,
}

impl OttVerifier {
    /// A verifier for the provisioner's public key.
    pub fn new(key: VerifyingKey) -> OttVerifier {
        OttVerifier {
            key: Verifier::es256(&key),
            kid: jwk_thumbprint(&key),
        }
    }

    /// The provisioner `kid` tokens must carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Checks algorithm, `kid`, signature and `nbf`/`exp` (1 minute leeway), returning the
    /// claims. The caller checks `iss`, `aud`, `jti` use and the requested certificate.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let parts = jws::decode::<Header>(token)?;
        if parts.header.alg != self.key.alg().name() {
            return Err(TokenError::Unsupported(parts.header.alg.clone()));
        }
        if parts.header.kid.as_deref().is_some_and(|k| k != self.kid) {
            return Err(TokenError::InvalidClaim(
                "kid is not this provisioner".into(),
            ));
        }
        let claims: Claims = parts.verify(&self.key)?;
        jws::check_times(claims.registered.nbf, claims.registered.exp, now)?;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::random(&mut rand_core::OsRng)
    }

    #[test]
    fn issue_then_verify_round_trips() {
        let k = key();
        let claims = Claims::host(
            "jwk",
            "https://ca.test/1.0/ssh/sign",
            "h1.test",
            &["10.0.0.5".into(), "h1.test".into()],
            1000,
            300,
        );
        assert_eq!(claims.step.ssh.principals, ["h1.test", "10.0.0.5"]);
        let token = issue(&k, &claims).unwrap();
        let v = OttVerifier::new(*k.verifying_key());
        assert_eq!(v.verify(&token, 1100).unwrap(), claims);
        assert_eq!(decode_unverified(&token).unwrap(), claims);
        assert!(matches!(
            v.verify(&token, 1000 + 300 + 61),
            Err(TokenError::Expired { .. })
        ));
        assert!(v.verify(&token, 1000 + 300 + 60).is_ok(), "leeway");
        assert!(matches!(
            v.verify(&token, 1000 - 61),
            Err(TokenError::NotYetValid { .. })
        ));
    }

    #[test]
    fn wrong_key_and_tampering_are_refused() {
        let k = key();
        let claims = Claims::enrollment("jwk", "https://ca/1.0/ssh/sign", "id1", "*.x", 10, 100);
        let token = issue(&k, &claims).unwrap();
        let other = OttVerifier::new(*key().verifying_key());
        assert!(other.verify(&token, 20).is_err());
        let v = OttVerifier::new(*k.verifying_key());
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut forged = claims.clone();
        forged.enrollment = Some(EnrollmentClaim {
            pattern: "*".into(),
        });
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert!(matches!(
            v.verify(&parts.join("."), 20),
            Err(TokenError::BadSignature)
        ));
        assert!(matches!(v.verify("a.b", 20), Err(TokenError::Malformed(_))));
        assert!(matches!(
            v.verify("garbage", 20),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn thumbprint_is_rfc7638_shape() {
        let t = jwk_thumbprint(key().verifying_key());
        assert_eq!(t.len(), 43);
    }
}
