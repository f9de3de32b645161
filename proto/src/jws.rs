//! Compact JWS (RFC 7515) encoding shared by the OTT and SSHPOP tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a token could not be issued or was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, or a part is not the JSON we expect.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The `alg` (or the key type) is not one this token kind allows.
    #[error("unsupported token algorithm or key type: {0}")]
    Unsupported(String),
    /// The signature does not verify with the expected key.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The time it was checked at.
        now: u64,
    },
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not valid before {nbf} (now {now}); check the clocks")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: u64,
        /// The time it was checked at.
        now: u64,
    },
    /// A claim has a value the token kind forbids.
    #[error("invalid token claim: {0}")]
    InvalidClaim(String),
    /// Reading or encoding an SSH key or certificate failed.
    #[error("SSH key or certificate: {0}")]
    Ssh(#[from] ssh_key::Error),
}

/// The registered JWT claims (RFC 7519) both token kinds carry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registered {
    /// Issuer: the provisioner name (`"sshpop"` for SSHPOP tokens).
    pub iss: String,
    /// Audience: the CA URL and path the token is for.
    pub aud: String,
    /// Subject: the host name or pattern (sign tokens), the certificate serial (SSHPOP).
    pub sub: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Not before, Unix seconds.
    pub nbf: u64,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Token ID: servers refuse a replayed one (fleet tokens: the enrollment token ID).
    pub jti: String,
}

impl Registered {
    /// Claims valid from `now` for `ttl_secs`.
    pub fn new(
        iss: &str,
        aud: &str,
        sub: &str,
        jti: String,
        now: u64,
        ttl_secs: u64,
    ) -> Registered {
        Registered {
            iss: iss.to_string(),
            aud: aud.to_string(),
            sub: sub.to_string(),
            iat: now,
            nbf: now,
            exp: now + ttl_secs,
            jti,
        }
    }
}

/// The JWS signature algorithms hostcert uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    Es256,
    EdDsa,
}

impl Alg {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }
}

/// A key that signs JWS payloads.
pub(crate) enum Signer<'a> {
    Es256(&'a Es256Signer),
    EdDsa(&'a ed25519_dalek::SigningKey),
}

/// An ES256 signing key, backed by ring when the `ring` feature is on.
pub(crate) struct Es256Signer {
    #[cfg(not(feature = "ring"))]
    key: p256::ecdsa::SigningKey,
    #[cfg(feature = "ring")]
    key: ring::signature::EcdsaKeyPair,
}

impl Es256Signer {
    pub(crate) fn new(key: &p256::ecdsa::SigningKey) -> Result<Es256Signer, TokenError> {
        #[cfg(not(feature = "ring"))]
        return Ok(Es256Signer { key: key.clone() });
        #[cfg(feature = "ring")]
        {
            let public = key.verifying_key().to_encoded_point(false);
            let key = ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.to_bytes(),
                public.as_bytes(),
                &ring::rand::SystemRandom::new(),
            )
            .map_err(|e| TokenError::Unsupported(format!("P-256 key: {e}")))?;
            Ok(Es256Signer { key })
        }
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        #[cfg(not(feature = "ring"))]
        {
            use p256::ecdsa::signature::Signer as _;
            let sig: p256::ecdsa::Signature = self.key.sign(input);
            sig.to_bytes().to_vec()
        }
        #[cfg(feature = "ring")]
        self.key
            .sign(&ring::rand::SystemRandom::new(), input)
            .map(|s| s.as_ref().to_vec())
            // ring fails only when the system RNG does; an empty signature never verifies.
            .unwrap_or_default()
    }
}

/// A key that verifies JWS payloads.
pub(crate) enum Verifier {
    #[cfg(not(feature = "ring"))]
    Es256(p256::ecdsa::VerifyingKey),
    #[cfg(feature = "ring")]
    Es256(ring::signature::UnparsedPublicKey<Vec<u8>>),
    EdDsa(ed25519_dalek::VerifyingKey),
}

impl Signer<'_> {
    fn sign(&self, input: &[u8]) -> Vec<u8> {
        use ed25519_dalek::Signer as _;
        match self {
            Signer::Es256(key) => key.sign(input),
            Signer::EdDsa(key) => key.sign(input).to_bytes().to_vec(),
        }
    }
}

impl Verifier {
    pub(crate) fn es256(key: &p256::ecdsa::VerifyingKey) -> Verifier {
        #[cfg(not(feature = "ring"))]
        return Verifier::Es256(*key);
        #[cfg(feature = "ring")]
        Verifier::Es256(ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            key.to_encoded_point(false).as_bytes().to_vec(),
        ))
    }

    pub(crate) fn alg(&self) -> Alg {
        match self {
            Verifier::Es256(_) => Alg::Es256,
            Verifier::EdDsa(_) => Alg::EdDsa,
        }
    }

    fn verify(&self, input: &[u8], sig: &[u8]) -> Result<(), TokenError> {
        let ok = match self {
            #[cfg(not(feature = "ring"))]
            Verifier::Es256(key) => {
                use p256::ecdsa::signature::Verifier as _;
                p256::ecdsa::Signature::from_slice(sig)
                    .map(|s| key.verify(input, &s).is_ok())
                    .unwrap_or(false)
            }
            #[cfg(feature = "ring")]
            Verifier::Es256(key) => key.verify(input, sig).is_ok(),
            Verifier::EdDsa(key) => ed25519_dalek::Signature::from_slice(sig)
                .map(|s| key.verify_strict(input, &s).is_ok())
                .unwrap_or(false),
        };
        if ok {
            Ok(())
        } else {
            Err(TokenError::BadSignature)
        }
    }
}

/// Signs `header` and `claims` into a compact JWS.
pub(crate) fn encode<H: Serialize, C: Serialize>(
    header: &H,
    claims: &C,
    signer: Signer<'_>,
) -> Result<String, TokenError> {
    let json = |v: serde_json::Result<Vec<u8>>| v.map_err(|e| TokenError::Malformed(e.to_string()));
    let mut out = URL_SAFE_NO_PAD.encode(json(serde_json::to_vec(header))?);
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(json(serde_json::to_vec(claims))?));
    let sig = signer.sign(out.as_bytes());
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(sig));
    Ok(out)
}

/// A compact JWS split into its parts; header and claims already decoded.
pub(crate) struct Parts<'t, H> {
    pub header: H,
    claims_json: Vec<u8>,
    signing_input: &'t str,
    signature: Vec<u8>,
}

/// Splits and decodes a compact JWS without verifying anything.
pub(crate) fn decode<H: DeserializeOwned>(token: &str) -> Result<Parts<'_, H>, TokenError> {
    let token = token.trim();
    let malformed = |what: &str| TokenError::Malformed(what.to_string());
    let (signing_input, sig) = token
        .rsplit_once('.')
        .ok_or_else(|| malformed("not a compact JWS"))?;
    let (header, claims) = signing_input
        .split_once('.')
        .ok_or_else(|| malformed("not a compact JWS"))?;
    let b64 = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| malformed(&format!("{what} is not base64url")))
    };
    let header_json = b64(header, "header")?;
    let header = serde_json::from_slice(&header_json)
        .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
    Ok(Parts {
        header,
        claims_json: b64(claims, "claims")?,
        signing_input,
        signature: b64(sig, "signature")?,
    })
}

impl<H> Parts<'_, H> {
    /// Decodes the claims without checking the signature.
    pub(crate) fn claims_unverified<C: DeserializeOwned>(&self) -> Result<C, TokenError> {
        serde_json::from_slice(&self.claims_json)
            .map_err(|e| TokenError::Malformed(format!("claims: {e}")))
    }

    /// Checks the signature, then decodes the claims.
    pub(crate) fn verify<C: DeserializeOwned>(&self, key: &Verifier) -> Result<C, TokenError> {
        key.verify(self.signing_input.as_bytes(), &self.signature)?;
        self.claims_unverified()
    }
}

/// Checks `nbf`/`exp` against `now` with [`crate::LEEWAY_SECS`] of leeway.
pub(crate) fn check_times(nbf: u64, exp: u64, now: u64) -> Result<(), TokenError> {
    if now > exp.saturating_add(crate::LEEWAY_SECS) {
        return Err(TokenError::Expired { exp, now });
    }
    if nbf > now.saturating_add(crate::LEEWAY_SECS) {
        return Err(TokenError::NotYetValid { nbf, now });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens signed by one ES256 backend verify with the other (the agent signs SSHPOP tokens
    /// with p256, the server may verify them with ring).
    #[test]
    fn es256_backends_interoperate() {
        use p256::ecdsa::signature::{Signer as _, Verifier as _};
        let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let msg = b"header.claims";
        let sig: p256::ecdsa::Signature = key.sign(msg);
        assert!(Verifier::es256(key.verifying_key())
            .verify(msg, &sig.to_bytes())
            .is_ok());
        let ours = Es256Signer::new(&key).unwrap().sign(msg);
        let ours = p256::ecdsa::Signature::from_slice(&ours).unwrap();
        assert!(key.verifying_key().verify(msg, &ours).is_ok());
        assert!(Verifier::es256(key.verifying_key())
            .verify(b"other", &sig.to_bytes())
            .is_err());
    }

    #[test]
    fn times_have_one_minute_leeway() {
        assert!(check_times(100, 200, 260).is_ok());
        assert!(check_times(100, 200, 261).is_err());
        assert!(check_times(100, 200, 40).is_ok());
        assert!(check_times(100, 200, 39).is_err());
    }
}
