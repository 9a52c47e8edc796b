//! Synthetic desired state at the design scale for the write benchmark and the cold-write
//! example: 60 site folders, bookings of seven realistic YAML files (~750 bytes each)
//! that differ per booking by names, and a kustomization per site.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(
    dead_code,
    reason = "shared by the benchmark and the example, each uses part"
)]

use verbund_git::RenderedFile;

pub const SITES: usize = 60;

/// Bookings in all, from `VERBUND_BENCH_BOOKINGS` (default 100,000).
pub fn bookings() -> usize {
    std::env::var("VERBUND_BENCH_BOOKINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

pub fn site_folder(site: usize) -> String {
    format!("sites/s{site:02}/prod")
}

/// Bookings of `site` when `total` are spread over all sites.
pub fn site_bookings(site: usize, total: usize) -> std::ops::Range<usize> {
    let per = total.div_ceil(SITES);
    (site * per).min(total)..((site + 1) * per).min(total)
}

/// The seven files of booking `b` (namespace `ns-<b>`), version `v`.
pub fn booking_files(site: usize, b: usize, v: usize) -> Vec<RenderedFile> {
    let folder = format!("{}/bookings/ns-{b:06}", site_folder(site));
    let ns = format!("ns-{b:06}");
    let org = format!("org-{:05}", b / 7);
    let labels = format!(
        "  labels:\n    app.kubernetes.io/managed-by: verbund\n    verbund.example/booking: bk-{b:06}\n    verbund.example/organisation: {org}\n    verbund.example/site: s{site:02}\n    verbund.example/tier: standard\n    verbund.example/environment: prod\n    verbund.example/contract: ct-{b:06}-{org}\n    verbund.example/cost-centre: cc-{:04}\n    verbund.example/data-classification: internal\n    verbund.example/backup-policy: daily-30d\n",
        b % 9973
    );
    let files = [
        ("namespace.yaml", format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n{labels}  annotations:\n    verbund.example/contact: ops-{org}@example.org\n    verbund.example/revision: \"{v}\"\n    verbund.example/description: Namespace of booking bk-{b:06} for {org}, managed by verbund; do not edit by hand, changes are overwritten.\n"
        )),
        ("helmrelease.yaml", format!(
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: nextcloud-{b:06}\n  namespace: {ns}\n{labels}spec:\n  interval: 10m\n  chart:\n    spec:\n      chart: nextcloud\n      version: 6.1.{v}\n      sourceRef: {{kind: HelmRepository, name: verbund-charts, namespace: flux-system}}\n  values:\n    replicaCount: 2\n    ingress: {{enabled: true, host: {ns}.s{site:02}.apps.example.org}}\n    existingSecret: {ns}-credentials\n"
        )),
        ("networkpolicy.yaml", format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny-{b:06}\n  namespace: {ns}\n{labels}spec:\n  podSelector: {{}}\n  policyTypes: [Ingress, Egress]\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {{kubernetes.io/metadata.name: ingress-nginx}}\n  egress:\n  - to:\n    - namespaceSelector:\n        matchLabels: {{kubernetes.io/metadata.name: kube-system}}\n    ports: [{{protocol: UDP, port: 53}}]\n"
        )),
        ("externalsecret.yaml", format!(
            "apiVersion: external-secrets.io/v1beta1\nkind: ExternalSecret\nmetadata:\n  name: {ns}-credentials\n  namespace: {ns}\n{labels}spec:\n  refreshInterval: 1h\n  secretStoreRef: {{name: verbund, kind: ClusterSecretStore}}\n  target: {{name: {ns}-credentials, creationPolicy: Owner}}\n  data:\n  - secretKey: password\n    remoteRef: {{key: verbund/{org}/{ns}/postgres, property: password}}\n  - secretKey: username\n    remoteRef: {{key: verbund/{org}/{ns}/postgres, property: username}}\n"
        )),
        ("resourcequota.yaml", format!(
            "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: quota-{b:06}\n  namespace: {ns}\n{labels}spec:\n  hard:\n    requests.cpu: \"{}\"\n    requests.memory: {}Gi\n    limits.cpu: \"{}\"\n    limits.memory: {}Gi\n    persistentvolumeclaims: \"10\"\n    requests.storage: 200Gi\n    services.loadbalancers: \"0\"\n    count/deployments.apps: \"20\"\n",
            2 + b % 4, 4 + b % 8, 4 + b % 4, 8 + b % 8
        )),
        ("rolebinding.yaml", format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {org}-admins\n  namespace: {ns}\n{labels}roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: verbund-namespace-admin\nsubjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: Group\n  name: oidc:{org}:admins\n- apiGroup: rbac.authorization.k8s.io\n  kind: Group\n  name: oidc:{org}:operators-{b:06}\n"
        )),
        ("kustomization.yaml", format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {ns}\ncommonLabels:\n  verbund.example/booking: bk-{b:06}\n  verbund.example/organisation: {org}\nresources:\n- namespace.yaml\n- helmrelease.yaml\n- networkpolicy.yaml\n- externalsecret.yaml\n- resourcequota.yaml\n- rolebinding.yaml\n"
        )),
    ];
    files
        .into_iter()
        .map(|(name, content)| RenderedFile {
            path: format!("{folder}/{name}"),
            content,
        })
        .collect()
}

/// The site's kustomization listing its bookings.
pub fn site_kustomization(site: usize, bookings: std::ops::Range<usize>, v: usize) -> RenderedFile {
    let mut content = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n# revision {v}\nresources:\n"
    );
    for b in bookings {
        content.push_str(&format!("- bookings/ns-{b:06}\n"));
    }
    RenderedFile {
        path: format!("{}/kustomization.yaml", site_folder(site)),
        content,
    }
}

/// Every file of one site folder.
pub fn site_files(site: usize, total: usize) -> Vec<RenderedFile> {
    let range = site_bookings(site, total);
    let mut files = vec![site_kustomization(site, range.clone(), 0)];
    for b in range {
        files.extend(booking_files(site, b, 0));
    }
    files
}
