//! Keys and certificates in memory, with the profile of Istio's `tools/certs` (common.mk):
//!
//! - root: `O=Istio, CN=Root CA`, `CA:TRUE` (critical), keyUsage digitalSignature,
//!   nonRepudiation, keyEncipherment, keyCertSign (critical), 10 years;
//! - intermediate: `O=Istio, CN=Intermediate CA, L=<cluster>`, `CA:TRUE, pathlen:0`, the same
//!   key usages, SAN `DNS:istiod.istio-system.svc`, 2 years;
//! - workload (tests only prove istiod could issue one): SPIFFE URI SAN, not a CA.
//!
//! Signing is with SHA-256 for both RSA and ECDSA keys, as the Makefiles' `default_md`.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize, SanType,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::{ISTIOD_SAN, KeyAlgorithm};

/// A certificate could not be made: a broken key or certificate given to sign with, or a
/// failure of the crypto library.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IssueError(String);

impl From<rcgen::Error> for IssueError {
    fn from(err: rcgen::Error) -> Self {
        IssueError(err.to_string())
    }
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// `days` days from `start` (whole seconds: certificates hold no fractions).
    pub fn days_from(start: OffsetDateTime, days: u32) -> Validity {
        let not_before = start.replace_nanosecond(0).unwrap_or(start);
        Validity {
            not_before,
            not_after: not_before + Duration::days(i64::from(days)),
        }
    }

    /// `days` days from now.
    pub fn days_from_now(days: u32) -> Validity {
        Validity::days_from(OffsetDateTime::now_utc(), days)
    }

    /// The same start, ending no later than `limit`: an intermediate that outlives its root
    /// is refused by verifiers once the root expires, so it should not claim to.
    pub fn ending_by(self, limit: OffsetDateTime) -> Validity {
        Validity {
            not_before: self.not_before,
            not_after: self.not_after.min(limit),
        }
    }
}

/// A new private key.
pub fn generate_key(algorithm: KeyAlgorithm) -> Result<KeyPair, IssueError> {
    let key = match algorithm {
        KeyAlgorithm::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096)?,
        KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?,
    };
    Ok(key)
}

/// `count` new keys, generated on every core: an RSA 4096 key takes about a second, so a
/// mesh of 100 primaries is a minute of key generation on one core.
/// `progress` is told `(done, count)` after each key, from the thread that made it.
pub fn generate_keys(
    algorithm: KeyAlgorithm,
    count: usize,
    progress: Option<fn(usize, usize)>,
) -> Vec<Result<KeyPair, IssueError>> {
    let slots: Vec<usize> = (0..count).collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    crate::parallel::map_on_all_cores(&slots, |_| {
        let key = generate_key(algorithm);
        if let Some(progress) = progress {
            progress(
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                count,
            );
        }
        key
    })
}

/// Parses a private key (PKCS#8, PKCS#1 or SEC1 PEM).
pub fn parse_key(pem: &str) -> Result<KeyPair, IssueError> {
    Ok(KeyPair::from_pem(pem)?)
}

/// Istio's key usages for a CA; keyEncipherment only where the key can encipher (RSA).
fn ca_key_usages(key: &KeyPair) -> Vec<KeyUsagePurpose> {
    ca_key_usages_for(key, false)
}

/// [`ca_key_usages`], with cRLSign when the CA is to sign CRLs (`[mesh.trust]` plans).
fn ca_key_usages_for(key: &KeyPair, crl_sign: bool) -> Vec<KeyUsagePurpose> {
    let mut usages = ca_key_usages_plain(key);
    if crl_sign {
        usages.push(KeyUsagePurpose::CrlSign);
    }
    usages
}

fn ca_key_usages_plain(key: &KeyPair) -> Vec<KeyUsagePurpose> {
    let mut usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
        KeyUsagePurpose::KeyCertSign,
    ];
    if key.algorithm() == &PKCS_RSA_SHA256 {
        usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    usages
}

/// A random positive 128-bit serial: two certificates of one issuer must never share one.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // The system RNG failing is not recoverable; a time-based serial still differs per run.
        let nanos = OffsetDateTime::now_utc()
            .unix_timestamp_nanos()
            .to_be_bytes();
        bytes = nanos;
    }
    // Positive, and no leading zero byte for DER to strip.
    bytes[0] = (bytes[0] & 0x7f).max(1);
    SerialNumber::from_slice(&bytes)
}

fn base_params(validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.serial_number = Some(random_serial());
    params.distinguished_name = DistinguishedName::new();
    params
}

/// The root's certificate parameters.
pub fn root_params(key: &KeyPair, validity: Validity) -> CertificateParams {
    let mut params = base_params(validity);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Istio");
    params
        .distinguished_name
        .push(DnType::CommonName, "Root CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = ca_key_usages(key);
    params
}

/// [`root_params`] that may also sign CRLs.
pub fn root_params_crl(key: &KeyPair, validity: Validity) -> CertificateParams {
    let mut params = root_params(key, validity);
    params.key_usages = ca_key_usages_for(key, true);
    params
}

/// [`intermediate_params`] that may also sign CRLs.
pub fn intermediate_params_crl(
    cluster: &str,
    key: &KeyPair,
    validity: Validity,
) -> Result<CertificateParams, IssueError> {
    let mut params = intermediate_params(cluster, key, validity)?;
    params.key_usages = ca_key_usages_for(key, true);
    Ok(params)
}

/// A cluster's intermediate CA parameters: `L=<cluster>` tells the clusters' CAs apart.
pub fn intermediate_params(
    cluster: &str,
    key: &KeyPair,
    validity: Validity,
) -> Result<CertificateParams, IssueError> {
    let mut params = base_params(validity);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Istio");
    params
        .distinguished_name
        .push(DnType::CommonName, "Intermediate CA");
    params
        .distinguished_name
        .push(DnType::LocalityName, cluster);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = ca_key_usages(key);
    params.subject_alt_names = vec![SanType::DnsName(ISTIOD_SAN.try_into()?)];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// A workload certificate as istiod issues one: `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.
pub fn workload_params(
    trust_domain: &str,
    namespace: &str,
    service_account: &str,
    validity: Validity,
) -> Result<CertificateParams, IssueError> {
    let mut params = base_params(validity);
    let uri = format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}");
    params.subject_alt_names = vec![SanType::URI(uri.as_str().try_into()?)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// A self-signed certificate (a root), PEM.
pub fn self_sign(params: CertificateParams, key: &KeyPair) -> Result<String, IssueError> {
    Ok(params.self_signed(key)?.pem())
}

/// A certificate for `key` signed by the CA `issuer_cert_pem` with `issuer_key`, PEM. The
/// issuer's name and key identifier are taken from its certificate, so an organisation's root
/// signs as well as one made here.
pub fn sign(
    params: CertificateParams,
    key: &KeyPair,
    issuer_cert_pem: &str,
    issuer_key: &KeyPair,
) -> Result<String, IssueError> {
    let issuer = Issuer::from_ca_cert_pem(issuer_cert_pem, issuer_key)?;
    Ok(params.signed_by(key, &issuer)?.pem())
}
