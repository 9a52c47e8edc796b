//! The cluster's certificates, made in process with rcgen: a CA, the serving certificate
//! (API server, controller-manager, scheduler), the admin client certificate and the
//! service-account signing key pair. ECDSA P-256 keys in PKCS#8, which Go and rustls read.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::{write_file, Result};

/// The names the serving certificate is valid for: loopback, the first service IP of
/// `10.96.0.0/16` and the in-cluster names of the `kubernetes` service.
pub(crate) const SERVING_NAMES: [&str; 7] = [
    "127.0.0.1",
    "localhost",
    "10.96.0.1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// The admin client's user name; its group is `system:masters`.
pub(crate) const ADMIN_USER: &str = "verbund-admin";

/// Generated key material, PEM encoded.
pub(crate) struct Pki {
    pub(crate) ca_cert: String,
    pub(crate) serving_cert: String,
    pub(crate) serving_key: String,
    pub(crate) admin_cert: String,
    pub(crate) admin_key: String,
    pub(crate) service_account_key: String,
    pub(crate) service_account_public_key: String,
}

/// Where [`Pki::write`] put the files the components read.
pub(crate) struct PkiFiles {
    pub(crate) ca_cert: PathBuf,
    pub(crate) serving_cert: PathBuf,
    pub(crate) serving_key: PathBuf,
    pub(crate) service_account_key: PathBuf,
    pub(crate) service_account_public_key: PathBuf,
}

impl Pki {
    /// Generates a fresh CA and everything it signs.
    pub(crate) fn generate() -> Result<Pki> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = name("verbund-testcluster-ca", None);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;

        let serving_key = KeyPair::generate()?;
        let mut serving_params = CertificateParams::new(SERVING_NAMES.map(str::to_owned).to_vec())?;
        serving_params.distinguished_name = name("kube-apiserver", None);
        serving_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        serving_params.use_authority_key_identifier_extension = true;
        let serving_cert = serving_params.signed_by(&serving_key, &ca)?;

        let admin_key = KeyPair::generate()?;
        let mut admin_params = CertificateParams::default();
        admin_params.distinguished_name = name(ADMIN_USER, Some("system:masters"));
        admin_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        admin_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        admin_params.use_authority_key_identifier_extension = true;
        let admin_cert = admin_params.signed_by(&admin_key, &ca)?;

        let service_account = KeyPair::generate()?;

        Ok(Pki {
            ca_cert: ca.pem(),
            serving_cert: serving_cert.pem(),
            serving_key: serving_key.serialize_pem(),
            admin_cert: admin_cert.pem(),
            admin_key: admin_key.serialize_pem(),
            service_account_key: service_account.serialize_pem(),
            service_account_public_key: service_account.public_key_pem(),
        })
    }

    /// Writes the files the components are given on their command lines (keys mode 0600).
    /// The admin credentials go only into the kubeconfig.
    pub(crate) fn write(&self, dir: &Path) -> Result<PkiFiles> {
        let files = PkiFiles {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join("serving.crt"),
            serving_key: dir.join("serving.key"),
            service_account_key: dir.join("service-account.key"),
            service_account_public_key: dir.join("service-account.pub"),
        };
        write_file(&files.ca_cert, self.ca_cert.as_bytes(), 0o644)?;
        write_file(&files.serving_cert, self.serving_cert.as_bytes(), 0o644)?;
        write_file(&files.serving_key, self.serving_key.as_bytes(), 0o600)?;
        write_file(
            &files.service_account_key,
            self.service_account_key.as_bytes(),
            0o600,
        )?;
        write_file(
            &files.service_account_public_key,
            self.service_account_public_key.as_bytes(),
            0o644,
        )?;
        Ok(files)
    }
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        name.push(DnType::OrganizationName, organization);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_pkcs8_and_certificates_pem() {
        let pki = Pki::generate().expect("certificates");
        for key in [&pki.serving_key, &pki.admin_key, &pki.service_account_key] {
            assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        }
        for cert in [&pki.ca_cert, &pki.serving_cert, &pki.admin_cert] {
            assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        }
        assert!(pki
            .service_account_public_key
            .starts_with("-----BEGIN PUBLIC KEY-----"));
    }
}
