//! A scan of the repository's whole history for secrets, the proof that the desired
//! state "never contains a plaintext secret": every blob reachable from any ref
//! (`git rev-list --all --objects`, read through `git cat-file --batch`) is parsed as
//! YAML, document by document.
//!
//! Reported are documents of `kind: Secret` (but those sealed with SOPS, whose every value
//! is encrypted: [`verbund_render::sealed::is_sealed_secret`]), kustomizations with a `secretGenerator`,
//! and literal secret values (by [`verbund_render::secrets::find_literal_secret`]) in
//! Helm values: a `HelmRelease`'s `spec.values` and an Argo CD `Application`'s
//! `helm.values`/`helm.valuesObject`. The literal-value rule is not applied to whole
//! manifests: there keys such as `secretKeyRef.key` or an `ExternalSecret`'s
//! `remoteRef.key` name secrets rather than hold them.

use serde::Deserialize;
use serde_json::Value;
use verbund_render::sealed::is_sealed_secret;
use verbund_render::secrets::find_literal_secret;

use crate::error::Result;
use crate::git;
use crate::repo::DesiredStateRepo;

/// A secret found in the repository's history.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The blob's object name.
    pub blob: String,
    /// A path under which the blob was committed.
    pub path: String,
    /// Index of the YAML document inside the file, from 0.
    pub document: usize,
    /// What was found.
    pub kind: FindingKind,
}

/// What a [`Finding`] is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FindingKind {
    /// A `Secret` object.
    SecretObject,
    /// A kustomization generating a `Secret`.
    SecretGenerator,
    /// A literal secret value at this JSON pointer into the document.
    LiteralValue(String),
}

/// Objects read per `git cat-file --batch` call of the history scan.
const SCAN_CHUNK: usize = 4096;

impl DesiredStateRepo {
    /// Every secret in every blob of every commit reachable from any ref, sorted.
    pub fn scan_history_for_secrets(&self) -> Result<Vec<Finding>> {
        let head = git::run_status(
            self.path(),
            &["rev-parse", "--verify", "-q", "HEAD"],
            None,
            None,
        )?;
        if !head.success() {
            return Ok(Vec::new());
        }
        let listing = git::run_text(self.path(), &["rev-list", "--all", "--objects"])?;
        // Commits come without a path; trees and blobs with one (the root tree's is empty).
        let candidates: Vec<(String, String)> = listing
            .lines()
            .filter_map(|line| {
                let (oid, path) = line.split_once(' ')?;
                (!path.is_empty()).then(|| (oid.to_owned(), path.to_owned()))
            })
            .collect();
        // Read in chunks so that a long history is never held in memory at once.
        let mut findings = Vec::new();
        for chunk in candidates.chunks(SCAN_CHUNK) {
            let oids: Vec<String> = chunk.iter().map(|(oid, _)| oid.clone()).collect();
            let objects = git::cat_blobs(self.path(), &oids)?;
            for ((oid, path), object) in chunk.iter().zip(objects) {
                let Some((kind, content)) = object else {
                    continue;
                };
                if kind != "blob" {
                    continue;
                }
                for (document, kind) in scan_yaml(&content) {
                    findings.push(Finding {
                        blob: oid.clone(),
                        path: path.clone(),
                        document,
                        kind,
                    });
                }
            }
        }
        findings.sort();
        Ok(findings)
    }
}

/// The secrets in one file's YAML documents; a file that is not YAML has none.
pub fn scan_yaml(content: &[u8]) -> Vec<(usize, FindingKind)> {
    let mut found = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_slice(content).enumerate() {
        let Ok(value) = Value::deserialize(document) else {
            // Not YAML (or not representable as JSON): nothing more to read in this file.
            break;
        };
        if let Some(kind) = scan_document(&value) {
            found.push((index, kind));
        }
    }
    found
}

fn scan_document(doc: &Value) -> Option<FindingKind> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    match kind {
        // A Secret sealed for its site with SOPS (a booking's declared secrets) holds no
        // value in plaintext.
        "Secret" if is_sealed_secret(doc) => return None,
        "Secret" => return Some(FindingKind::SecretObject),
        "Kustomization" if doc.get("secretGenerator").is_some() => {
            return Some(FindingKind::SecretGenerator);
        }
        _ => {}
    }
    let mut values: Vec<(String, Value)> = Vec::new();
    if kind == "HelmRelease" {
        if let Some(v) = doc.pointer("/spec/values") {
            values.push(("/spec/values".to_owned(), v.clone()));
        }
    }
    if kind == "Application" {
        let mut sources = Vec::new();
        if let Some(source) = doc.pointer("/spec/source") {
            sources.push(("/spec/source".to_owned(), source));
        }
        if let Some(list) = doc.pointer("/spec/sources").and_then(Value::as_array) {
            for (i, source) in list.iter().enumerate() {
                sources.push((format!("/spec/sources/{i}"), source));
            }
        }
        for (at, source) in sources {
            if let Some(v) = source.pointer("/helm/valuesObject") {
                values.push((format!("{at}/helm/valuesObject"), v.clone()));
            }
            if let Some(text) = source.pointer("/helm/values").and_then(Value::as_str) {
                if let Ok(v) = serde_yaml_ng::from_str::<Value>(text) {
                    values.push((format!("{at}/helm/values"), v));
                }
            }
        }
    }
    values.into_iter().find_map(|(at, v)| {
        find_literal_secret(&v).map(|pointer| FindingKind::LiteralValue(format!("{at}{pointer}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_secret_objects_and_helm_values() {
        let yaml = b"kind: ConfigMap\ndata: {a: b}\n---\nkind: Secret\nstringData: {p: x}\n---\nkind: HelmRelease\nspec:\n  values:\n    adminPassword: hunter2\n";
        assert_eq!(
            scan_yaml(yaml),
            vec![
                (1, FindingKind::SecretObject),
                (
                    2,
                    FindingKind::LiteralValue("/spec/values/adminPassword".into())
                )
            ]
        );
    }

    #[test]
    fn a_sealed_secret_is_no_finding_but_one_with_a_plaintext_value_is() {
        let sealed = b"kind: Secret\ndata:\n  SMTP_PASSWORD: ENC[AES256_GCM,data:abc,iv:def,tag:ghi,type:str]\nsops:\n  mac: ENC[AES256_GCM,data:m,iv:i,tag:t,type:str]\n";
        assert!(scan_yaml(sealed).is_empty());
        let half = b"kind: Secret\ndata:\n  SMTP_PASSWORD: aHVudGVyMg==\nsops:\n  mac: ENC[AES256_GCM,data:m,iv:i,tag:t,type:str]\n";
        assert_eq!(scan_yaml(half), vec![(0, FindingKind::SecretObject)]);
    }

    #[test]
    fn references_are_not_secrets() {
        let yaml = b"kind: ExternalSecret\nspec:\n  data:\n  - secretKey: password\n    remoteRef: {key: verbund/ns/pg}\n---\nkind: HelmRelease\nspec:\n  values:\n    existingSecret: pg-credentials\n    password: ''\n";
        assert!(scan_yaml(yaml).is_empty());
        assert!(scan_yaml(b"\x00\x01 not yaml: [").is_empty());
    }
}
