//! `init`: create the CA in a new directory.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use p256::pkcs8::EncodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::ca::CaKey;
use crate::cli::InitArgs;
use crate::layout::{write_new, Config, Layout};

/// Name of the JWK provisioner (`iss` of sign tokens).
const PROVISIONER: &str = "hostcert-jwk";

/// The X.509 material `init` creates.
struct X509 {
    root_pem: String,
    root_key_pem: String,
    root_fingerprint: String,
    tls_pem: String,
    tls_key_pem: String,
}

fn x509(dns: &[String]) -> Result<X509> {
    let now = OffsetDateTime::now_utc();
    let root_key = KeyPair::generate()?;
    let mut root = CertificateParams::default();
    root.distinguished_name
        .push(DnType::CommonName, "hostcert root CA");
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    root.not_before = now - Duration::minutes(1);
    root.not_after = now + Duration::days(3650);
    let root_cert = root.self_signed(&root_key)?;

    let tls_key = KeyPair::generate()?;
    let mut tls = CertificateParams::default();
    tls.distinguished_name
        .push(DnType::CommonName, dns[0].as_str());
    tls.subject_alt_names = dns
        .iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(name.as_str().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    tls.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    tls.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    tls.not_before = now - Duration::minutes(1);
    tls.not_after = now + Duration::days(825);
    let tls_cert = tls.signed_by(&tls_key, &root_cert, &root_key)?;

    Ok(X509 {
        root_fingerprint: hostcert_proto::api::fingerprint_der(root_cert.der()),
        root_pem: root_cert.pem(),
        root_key_pem: root_key.serialize_pem(),
        tls_pem: tls_cert.pem(),
        tls_key_pem: tls_key.serialize_pem(),
    })
}

/// `https://host:port`, bracketing IPv6 literals.
fn ca_url(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("https://[{host}]:{port}"),
        _ => format!("https://{host}:{port}"),
    }
}

/// Runs `init`.
pub fn run(args: &InitArgs) -> Result<()> {
    let layout = Layout::new(&args.dir.dir);
    if layout.config().exists() {
        bail!(
            "{} is already initialised; nothing changed",
            layout.dir().display()
        );
    }
    let address: SocketAddr = args
        .address
        .parse()
        .with_context(|| format!("--address {:?} is not HOST:PORT", args.address))?;
    let dns: Vec<String> = args
        .dns
        .iter()
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    let valid = |d: &String| {
        d.parse::<IpAddr>().is_ok()
            || (!d.is_empty()
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
    };
    if let Some(bad) = dns.iter().find(|d| !valid(d)) {
        bail!("--dns {bad:?} is not a DNS name or IP address");
    }

    // Everything is generated before the first file is written.
    let x509 = x509(&dns).context("creating the X.509 root and TLS certificate")?;
    let host_ca = CaKey::generate()?;
    let user_ca = CaKey::generate()?;
    let provisioner = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let provisioner_pem = provisioner
        .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding the provisioner key: {e}"))?;
    let admin = format!(
        "{}{}\n",
        hostcert_proto::random_hex_id(),
        hostcert_proto::random_hex_id()
    );
    let config = Config {
        ca_url: ca_url(&dns[0], address.port()),
        dns,
        address: args.address.clone(),
        provisioner: PROVISIONER.to_string(),
        root_fingerprint: x509.root_fingerprint.clone(),
    };

    let created_dir = !layout.dir().exists();
    fs::create_dir_all(layout.dir())
        .with_context(|| format!("creating {}", layout.dir().display()))?;
    if created_dir {
        fs::set_permissions(layout.dir(), fs::Permissions::from_mode(0o700))?;
    }
    let files: Vec<(PathBuf, Vec<u8>, u32)> = vec![
        (layout.root_cert(), x509.root_pem.into_bytes(), 0o644),
        (layout.root_key(), x509.root_key_pem.into_bytes(), 0o600),
        (layout.tls_cert(), x509.tls_pem.into_bytes(), 0o644),
        (layout.tls_key(), x509.tls_key_pem.into_bytes(), 0o600),
        (
            layout.host_ca_key(),
            host_ca.to_openssh("hostcert host CA")?.into_bytes(),
            0o600,
        ),
        (
            layout.user_ca_key(),
            user_ca.to_openssh("hostcert user CA")?.into_bytes(),
            0o600,
        ),
        (
            layout.provisioner_key(),
            provisioner_pem.as_bytes().to_vec(),
            0o600,
        ),
        (layout.admin_credential(), admin.into_bytes(), 0o600),
    ];
    let mut written = Vec::new();
    let result = (|| -> Result<()> {
        for (path, data, mode) in &files {
            write_new(path, data, *mode)?;
            written.push(path.clone());
        }
        written.push(layout.db());
        crate::db::open(&layout.db())?;
        let config_json = serde_json::to_vec_pretty(&config)?;
        write_new(&layout.config(), &config_json, 0o644)
    })();
    if let Err(e) = result {
        // Leave the directory as it was: remove what this run created.
        for path in &written {
            let _ = fs::remove_file(path);
        }
        for suffix in ["-wal", "-shm"] {
            let _ = fs::remove_file(format!("{}{suffix}", layout.db().display()));
        }
        if created_dir {
            let _ = fs::remove_dir(layout.dir());
        }
        return Err(e);
    }

    println!("hostcert-server initialised in {}", layout.dir().display());
    println!("admin credential: {}", layout.admin_credential().display());
    println!("HOSTCERT_CA_URL={}", config.ca_url);
    println!("HOSTCERT_FINGERPRINT={}", config.root_fingerprint);
    Ok(())
}
