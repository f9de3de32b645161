//! SSH certificate authority: CA keys, validity policy, certificate building, serials.

use anyhow::{bail, Context, Result};
use ed25519_dalek::ed25519::signature;
use rand_core::{OsRng, RngCore};
use ssh_key::certificate::{Builder, CertType};
use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, Certificate, Fingerprint, HashAlg, LineEnding, PrivateKey, Signature};

/// One minute of backdating on `validAfter`, as step-ca does.
pub const BACKDATE_SECS: u64 = 60;
/// Shortest certificate the CA signs.
pub const MIN_TTL_SECS: u64 = 5 * 60;
/// Longest host certificate the CA signs.
pub const MAX_HOST_TTL_SECS: u64 = 30 * 24 * 3600;

/// An Ed25519 SSH CA key, kept as an expanded ed25519-dalek key so signing does not re-derive
/// the public key every time (that would double the cost of a certificate).
pub struct CaKey {
    signing: ed25519_dalek::SigningKey,
    public: KeyData,
    fingerprint: Fingerprint,
}

impl CaKey {
    /// A new random CA key.
    pub fn generate() -> Result<CaKey> {
        CaKey::from_private(&PrivateKey::random(&mut OsRng, Algorithm::Ed25519)?)
    }

    /// Parses an OpenSSH private key file's contents.
    pub fn from_openssh(text: &str) -> Result<CaKey> {
        CaKey::from_private(&PrivateKey::from_openssh(text)?)
    }

    fn from_private(key: &PrivateKey) -> Result<CaKey> {
        let KeypairData::Ed25519(pair) = key.key_data() else {
            bail!("CA keys must be Ed25519");
        };
        let public = key.public_key().key_data().clone();
        Ok(CaKey {
            signing: ed25519_dalek::SigningKey::try_from(pair)?,
            fingerprint: public.fingerprint(HashAlg::Sha256),
            public,
        })
    }

    /// The private key in OpenSSH format.
    pub fn to_openssh(&self, comment: &str) -> Result<String> {
        let pair = Ed25519Keypair::from(&self.signing);
        let key = PrivateKey::new(KeypairData::Ed25519(pair), comment)?;
        Ok(key.to_openssh(LineEnding::LF)?.to_string())
    }

    /// The public key.
    pub fn public(&self) -> &KeyData {
        &self.public
    }

    /// The public key as an OpenSSH public key.
    pub fn public_key(&self) -> ssh_key::PublicKey {
        ssh_key::PublicKey::new(self.public.clone(), "")
    }

    /// SHA-256 fingerprint of the public key.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }
}

impl signature::Signer<Signature> for CaKey {
    fn try_sign(&self, msg: &[u8]) -> Result<Signature, signature::Error> {
        Signature::new(Algorithm::Ed25519, self.signing.sign(msg).to_vec())
            .map_err(|_| signature::Error::new())
    }
}

impl From<&CaKey> for KeyData {
    fn from(key: &CaKey) -> KeyData {
        key.public.clone()
    }
}

/// Host certificate lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Lifetime when the request and token leave it unset.
    pub default_ttl: u64,
    /// Longest lifetime granted.
    pub max_ttl: u64,
}

impl Policy {
    /// A policy whose default lifetime is `default_ttl` (5 minutes to 30 days).
    pub fn new(default_ttl: u64) -> Result<Policy> {
        if !(MIN_TTL_SECS..=MAX_HOST_TTL_SECS).contains(&default_ttl) {
            bail!("the host certificate lifetime must be between 5 minutes and 30 days");
        }
        Ok(Policy {
            default_ttl,
            max_ttl: MAX_HOST_TTL_SECS,
        })
    }

    /// The validity window for a certificate issued at `now`, given optional requested bounds.
    pub fn window(
        &self,
        now: u64,
        after: Option<u64>,
        before: Option<u64>,
    ) -> Result<(u64, u64), String> {
        let after = after.unwrap_or(now.saturating_sub(BACKDATE_SECS));
        let before = before.unwrap_or(after.max(now) + self.default_ttl);
        if before <= after {
            return Err("validBefore must be after validAfter".into());
        }
        let ttl = before - after;
        if ttl < MIN_TTL_SECS {
            return Err(format!(
                "requested lifetime {ttl}s is shorter than 5 minutes"
            ));
        }
        if ttl > self.max_ttl + BACKDATE_SECS {
            return Err(format!(
                "requested lifetime {ttl}s is longer than the maximum of {}s",
                self.max_ttl
            ));
        }
        Ok((after, before))
    }
}

/// A random non-zero 63-bit serial (fits SQLite's signed INTEGER).
pub fn new_serial() -> u64 {
    loop {
        let serial = OsRng.next_u64() >> 1;
        if serial != 0 {
            return serial;
        }
    }
}

/// What goes into a certificate.
pub struct CertSpec<'a> {
    /// Host or user.
    pub cert_type: CertType,
    /// Serial number.
    pub serial: u64,
    /// Key ID.
    pub key_id: &'a str,
    /// Principals (never empty: an empty list would be valid for everyone).
    pub principals: &'a [String],
    /// Unix seconds.
    pub valid_after: u64,
    /// Unix seconds.
    pub valid_before: u64,
    /// The key being certified.
    pub public_key: &'a KeyData,
}

/// User certificate extensions OpenSSH's `ssh-keygen -s` sets by default.
const USER_EXTENSIONS: [&str; 5] = [
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

/// Signs `spec` with `ca`.
pub fn sign(ca: &CaKey, spec: &CertSpec<'_>) -> Result<Certificate> {
    if spec.principals.is_empty() {
        bail!("a certificate needs at least one principal");
    }
    let mut b = Builder::new_with_random_nonce(
        &mut OsRng,
        spec.public_key.clone(),
        spec.valid_after,
        spec.valid_before,
    )?;
    b.serial(spec.serial)?;
    b.cert_type(spec.cert_type)?;
    b.key_id(spec.key_id)?;
    for p in spec.principals {
        b.valid_principal(p.as_str())?;
    }
    if spec.cert_type == CertType::User {
        for ext in USER_EXTENSIONS {
            b.extension(ext, "")?;
        }
    }
    b.sign(ca).context("signing the certificate")
}

/// Whether `name` matches an enrollment pattern: `*` stands for one or more characters
/// within a single DNS label (never a `.`), everything else matches itself, case-insensitively.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (1..=n.len())
                .take_while(|&i| n[i - 1] != b'.')
                .any(|i| go(rest, &n[i..])),
            Some((c, rest)) => {
                n.first().is_some_and(|d| d.eq_ignore_ascii_case(c)) && go(rest, &n[1..])
            }
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_one_label() {
        assert!(pattern_matches(
            "*.prod.example.com",
            "web1.prod.example.com"
        ));
        assert!(pattern_matches(
            "*.prod.example.com",
            "WEB1.Prod.example.com"
        ));
        assert!(!pattern_matches(
            "*.prod.example.com",
            "a.b.prod.example.com"
        ));
        assert!(!pattern_matches("*.prod.example.com", ".prod.example.com"));
        assert!(!pattern_matches(
            "*.prod.example.com",
            "web1.dev.example.com"
        ));
        assert!(!pattern_matches("*.prod.example.com", "evil.com"));
        assert!(pattern_matches("web-*.x", "web-12.x"));
        assert!(!pattern_matches("web-*.x", "db-12.x"));
        assert!(pattern_matches("h1.x", "h1.x"));
    }

    #[test]
    fn window_applies_backdate_and_limits() {
        let p = Policy::new(MAX_HOST_TTL_SECS).unwrap();
        assert_eq!(
            p.window(10_000, None, None).unwrap(),
            (10_000 - 60, 10_000 + MAX_HOST_TTL_SECS)
        );
        assert!(p.window(10_000, None, Some(10_000 + 60)).is_err());
        assert!(p
            .window(10_000, None, Some(10_000 + 2 * MAX_HOST_TTL_SECS))
            .is_err());
        assert!(p.window(10_000, Some(20_000), Some(19_000)).is_err());
        let short = Policy::new(600).unwrap();
        assert_eq!(short.window(10_000, None, None).unwrap().1, 10_600);
        assert!(Policy::new(60).is_err());
    }

    #[test]
    fn ca_key_signs_verifiable_certificates() {
        let ca = CaKey::generate().unwrap();
        let host = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
        let cert = sign(
            &ca,
            &CertSpec {
                cert_type: CertType::Host,
                serial: new_serial(),
                key_id: "h1",
                principals: &["h1".to_string()],
                valid_after: 0,
                valid_before: 4_000_000_000,
                public_key: host.public_key().key_data(),
            },
        )
        .unwrap();
        cert.validate_at(100, [ca.fingerprint()]).unwrap();
        let again = CaKey::from_openssh(&ca.to_openssh("c").unwrap()).unwrap();
        assert_eq!(again.public(), ca.public());
    }
}
