//! The mesh's certificate authority, offline: `meshplan certs` and `meshplan check --certs`.
//!
//! Every cluster's istiod signs workload certificates with its own intermediate CA (the
//! `cacerts` Secret); every intermediate must chain to the one root the mesh shares, or
//! cross-cluster mTLS fails. This module is apart from the compile on purpose: it makes private
//! keys, which are random and secret, while the compiled tree is deterministic and committed.
//!
//! - [`issue`]: keys and certificates in memory, the way Istio's `tools/certs` makes them;
//! - [`check`]: coded findings (`meshplan::cert::*`) about a directory's files, read through a
//!   function so the rules stay free of I/O;
//! - [`store`]: what a `certs` run makes, decided and checked before anything is written;
//! - [`dir`]: the directory on disk through directory handles: owners, modes, no links, the
//!   lock, all-or-nothing writes (the rules: `docs/ca-directory.md`).

pub mod check;
pub mod dir;
pub mod issue;
pub mod store;

pub use check::CertError;

/// The files of a cluster's directory, as Istio's `cacerts` Secret names them.
pub const CLUSTER_FILES: [&str; 4] = [
    "ca-cert.pem",
    "ca-key.pem",
    "root-cert.pem",
    "cert-chain.pem",
];
/// The root's certificate at the top of the directory.
pub const ROOT_CERT: &str = "root-cert.pem";
/// The CRLs of a root and of its intermediates, at the top of a root's directory (a plan with
/// `[mesh.trust]` revocations only), named as Istio's `cacerts` Secret names it.
pub const CRL: &str = "ca-crl.pem";
/// The root's private key at the top of the directory (absent when the root is brought in).
pub const ROOT_KEY: &str = "root-key.pem";
/// The SAN Istio's intermediates carry: istiod's in-cluster name.
pub const ISTIOD_SAN: &str = "istiod.istio-system.svc";
/// Days before expiry from which `check --certs` warns.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// The key algorithm of generated keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// RSA 4096, what Istio's `tools/certs` makes (slow to generate: about a second a key).
    Rsa4096,
    /// ECDSA P-256: generated in microseconds; istiod accepts it.
    EcdsaP256,
}

/// How `meshplan certs` makes what is missing.
#[derive(Debug, Clone)]
pub struct Options {
    /// The algorithm of new keys.
    pub algorithm: KeyAlgorithm,
    /// Validity of a new root, in days.
    pub root_days: u32,
    /// Validity of a new intermediate, in days (never past the root's end).
    pub intermediate_days: u32,
    /// An existing root to sign with instead of generating one: its certificate and key (PEM).
    pub root: Option<BroughtRoot>,
    /// The one cluster whose intermediate key and certificate are replaced.
    pub rotate: Option<String>,
    /// Told `(done, total)` as each new key is made (an RSA 4096 key takes about a second).
    pub progress: Option<fn(usize, usize)>,
    /// New roots and intermediates may also sign CRLs (keyUsage cRLSign): a plan with
    /// `[mesh.trust]` phases, whose revocations need CRLs from every CA. Off for a one-root
    /// mesh, whose certificates keep Istio's tools/certs profile exactly.
    pub crl_sign: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            algorithm: KeyAlgorithm::Rsa4096,
            root_days: 3650,
            intermediate_days: 730,
            root: None,
            rotate: None,
            progress: None,
            crl_sign: false,
        }
    }
}

/// An organisation's root, read from `--root-cert` and `--root-key`.
#[derive(Debug, Clone)]
pub struct BroughtRoot {
    /// Where the certificate was read from, for messages.
    pub cert_path: String,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Where the key was read from, for messages.
    pub key_path: String,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
}

/// The SHA-256 fingerprint of a DER certificate as `openssl x509 -fingerprint -sha256` prints
/// it (`AB:CD:…`), so a user can compare it with what openssl and `verify-trust.sh` print.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
