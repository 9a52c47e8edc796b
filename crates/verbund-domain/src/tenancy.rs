//! What a vendor's content may create in a booking's namespace: the one rule that
//! decides at publish time (a version's plain manifests, 422 naming the object), at
//! render time (the renderer refuses the booking), and in the site's agent (every object
//! a chart renders). Because all three call [`check_tenant_object`], nothing accepted at
//! publish time can be refused later for a reason the vendor could not see.
//!
//! Why an allowlist: a denylist of cluster-scoped kinds let namespaced Flux and Argo CD
//! objects through, and those act with the GitOps controller's rights. A tenant owns the
//! workloads of its namespace and what they need; the namespace's boundary — quota,
//! limits, network policies, the tenant's and the deployer's role bindings, credentials
//! from the secret store — is verbund's and is rendered by verbund only.
//!
//! The same list is the rules of the deployer role (`verbund-deployer`) that vendor
//! content is applied with (see [`DEPLOYER_RULES`]), so the API server enforces at the
//! site what verbund checks before delivery.

use serde_json::Value;

/// A kind a tenant's vendor content may own: the API group (empty for the core group),
/// the kind, and its plural resource name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantKind {
    pub group: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

const fn kind(group: &'static str, kind: &'static str, plural: &'static str) -> TenantKind {
    TenantKind {
        group,
        kind,
        plural,
    }
}

/// Every kind a booking's vendor content may create, all namespaced. Not on it, on
/// purpose: `Secret` (never in the desired state), `NetworkPolicy`, `ResourceQuota`,
/// `LimitRange` (the boundary), `ExternalSecret` (it could name another tenant's key in
/// the site's secret store), every Flux and Argo CD kind (they act with the controller's
/// rights), `Pod` and `DaemonSet` (unmanaged or on every node), and everything
/// cluster-scoped.
#[rustfmt::skip]
pub const TENANT_KINDS: [TenantKind; 13] = [
    kind("", "ConfigMap", "configmaps"),
    kind("", "Service", "services"),
    kind("", "ServiceAccount", "serviceaccounts"),
    kind("", "PersistentVolumeClaim", "persistentvolumeclaims"),
    kind("apps", "Deployment", "deployments"),
    kind("apps", "StatefulSet", "statefulsets"),
    kind("batch", "Job", "jobs"),
    kind("batch", "CronJob", "cronjobs"),
    kind("networking.k8s.io", "Ingress", "ingresses"),
    kind("policy", "PodDisruptionBudget", "poddisruptionbudgets"),
    kind("autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    kind("rbac.authorization.k8s.io", "Role", "roles"),
    kind("rbac.authorization.k8s.io", "RoleBinding", "rolebindings"),
];

/// The deployer: the ServiceAccount in each booking's namespace that vendor content is
/// applied as, its RoleBinding there, and the site's ClusterRole they bind.
pub const DEPLOYER: &str = "verbund-deployer";

/// A rule of the deployer role: API groups, resources and verbs, as RBAC spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub groups: &'static [&'static str],
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
}

const WRITE: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// The rules of the `verbund-deployer` cluster role, bound in each booking's namespace to
/// the booking's deployer service account: full rights over [`TENANT_KINDS`], Secrets
/// (Helm keeps its release records in them, and charts generate their own credentials
/// at the site; none ever comes from the desired state), and reading pods and events, which
/// Helm and Flux watch while they wait for a release.
#[rustfmt::skip]
pub const DEPLOYER_RULES: [Rule; 9] = [
    Rule { groups: &[""], resources: &["configmaps", "services", "serviceaccounts", "persistentvolumeclaims", "secrets"], verbs: WRITE },
    Rule { groups: &["apps"], resources: &["deployments", "statefulsets"], verbs: WRITE },
    Rule { groups: &["batch"], resources: &["jobs", "cronjobs"], verbs: WRITE },
    Rule { groups: &["networking.k8s.io"], resources: &["ingresses"], verbs: WRITE },
    Rule { groups: &["policy"], resources: &["poddisruptionbudgets"], verbs: WRITE },
    Rule { groups: &["autoscaling"], resources: &["horizontalpodautoscalers"], verbs: WRITE },
    Rule { groups: &["rbac.authorization.k8s.io"], resources: &["roles", "rolebindings"], verbs: WRITE },
    Rule { groups: &[""], resources: &["pods", "events", "endpoints"], verbs: &["get", "list", "watch"] },
    Rule { groups: &["apps"], resources: &["replicasets"], verbs: &["get", "list", "watch"] },
];

/// The ClusterRole `verbund-deployer` with [`DEPLOYER_RULES`], as the Kubernetes object
/// both the renderer (Flux and Argo CD sites' `root.yaml`) and the agent's install
/// manifests deliver.
pub fn deployer_cluster_role() -> Value {
    let rules: Vec<Value> = DEPLOYER_RULES
        .iter()
        .map(|r| {
            serde_json::json!({
                "apiGroups": r.groups,
                "resources": r.resources,
                "verbs": r.verbs,
            })
        })
        .collect();
    serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": DEPLOYER,
            "labels": {"app.kubernetes.io/managed-by": "verbund", "app.kubernetes.io/part-of": "verbund"},
        },
        "rules": rules,
    })
}

/// The API group of an `apiVersion`: `apps/v1` → `apps`, `v1` → the core group `""`.
pub fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// The allowed kind with this `apiVersion` and `kind`, if a tenant may own it.
pub fn tenant_kind(api_version: &str, kind: &str) -> Option<&'static TenantKind> {
    let group = api_group(api_version);
    TENANT_KINDS
        .iter()
        .find(|k| k.kind == kind && k.group == group)
}

/// Why a vendor's object cannot be delivered, in a sentence a vendor can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a JSON object.
    #[error("a manifest must be an object")]
    NotAnObject,
    /// `apiVersion` or `kind` is missing.
    #[error("a manifest needs `apiVersion` and `kind`")]
    NoKind,
    /// `metadata.name` is missing or `metadata` is not an object.
    #[error("a manifest needs `metadata.name`")]
    NoName,
    /// A `Secret`: the desired state never holds one.
    #[error("`Secret` `{name}` may not be delivered: secrets never go into the desired state; declare a secret configuration field or reference a credentials secret instead")]
    Secret { name: String },
    /// A `…List`.
    #[error("`{kind}` is a list; give its items one by one")]
    List { kind: String },
    /// A kind outside [`TENANT_KINDS`].
    #[error("`{api_version}` `{kind}` `{name}` is not a kind a tenant may own; a booking's content may create only {allowed}")]
    Kind {
        api_version: String,
        kind: String,
        name: String,
        allowed: String,
    },
    /// A Role or RoleBinding that would reach beyond what the booking's deployer holds:
    /// the API server refuses it (RBAC forbids granting rights one lacks), or it would
    /// let someone outside the booking's namespace act in it.
    #[error("`{kind}` `{name}` {reason}")]
    Rbac {
        kind: String,
        name: String,
        reason: String,
    },
    /// A literal secret value in a ConfigMap.
    #[error("`{pointer}` of `ConfigMap` `{name}` looks like a secret with a literal value")]
    SecretValue { name: String, pointer: String },
}

/// The allowed kinds as a vendor reads them: `ConfigMap, Service, …, RoleBinding`.
pub fn allowed_kinds() -> String {
    TENANT_KINDS
        .iter()
        .map(|k| k.kind)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a tenant's vendor content may contain `object`: a named object of a kind on
/// [`TENANT_KINDS`], a Role or RoleBinding within the booking's rights and namespace, and,
/// for a ConfigMap, no literal secret in its data. Its namespace does not matter: the
/// renderer places it in the booking's namespace, whatever it names.
pub fn check_tenant_object(object: &Value) -> Result<(), Refusal> {
    let Value::Object(map) = object else {
        return Err(Refusal::NotAnObject);
    };
    let text = |key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
        return Err(Refusal::NoKind);
    };
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if kind == "Secret" && api_group(api_version).is_empty() {
        return Err(Refusal::Secret {
            name: name.unwrap_or_default().to_string(),
        });
    }
    if kind.ends_with("List") {
        return Err(Refusal::List {
            kind: kind.to_string(),
        });
    }
    let Some(name) = name else {
        return Err(Refusal::NoName);
    };
    if tenant_kind(api_version, kind).is_none() {
        return Err(Refusal::Kind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            allowed: allowed_kinds(),
        });
    }
    match kind {
        "Role" => check_role(map).map_err(|reason| rbac(kind, name, reason))?,
        "RoleBinding" => check_role_binding(map).map_err(|reason| rbac(kind, name, reason))?,
        _ => {}
    }
    if kind == "ConfigMap" {
        for field in ["data", "binaryData"] {
            if let Some(pointer) = map.get(field).and_then(crate::secrets::find_literal_secret) {
                return Err(Refusal::SecretValue {
                    name: name.to_string(),
                    pointer: format!("/{field}{pointer}"),
                });
            }
        }
    }
    Ok(())
}

fn rbac(kind: &str, name: &str, reason: String) -> Refusal {
    Refusal::Rbac {
        kind: kind.to_string(),
        name: name.to_string(),
        reason,
    }
}

/// A vendor's Role may grant only what the deployer applying it holds
/// ([`DEPLOYER_RULES`]): the API server refuses any other (RBAC's escalation check), so
/// accepting it would be a booking that can never be applied.
fn check_role(role: &serde_json::Map<String, Value>) -> Result<(), String> {
    let strings = |rule: &Value, field: &str| -> Vec<String> {
        rule.get(field)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let rules = role.get("rules").and_then(Value::as_array);
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        if rule.get("nonResourceURLs").is_some() {
            return Err(format!(
                "rule {i} names nonResourceURLs, which only a ClusterRole may"
            ));
        }
        for group in strings(rule, "apiGroups") {
            for resource in strings(rule, "resources") {
                for verb in strings(rule, "verbs") {
                    let held = DEPLOYER_RULES.iter().any(|r| {
                        r.groups.contains(&group.as_str())
                            && r.resources.contains(&resource.as_str())
                            && r.verbs.contains(&verb.as_str())
                    });
                    if !held {
                        return Err(format!(
                            "grants `{verb}` on `{resource}` of group `{group}` (rule {i}), more than a booking's deployer holds; a tenant's Role may grant only: {}",
                            held_rights()
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// What a tenant's Role may grant, as a vendor reads it.
fn held_rights() -> String {
    DEPLOYER_RULES
        .iter()
        .map(|r| format!("{} on {}", r.verbs.join("/"), r.resources.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A vendor's RoleBinding binds a Role of its own namespace to ServiceAccounts of its own
/// namespace: a ClusterRole (`admin`, `edit`) holds rights the deployer lacks, and any
/// other subject would let someone outside the booking act in it.
fn check_role_binding(binding: &serde_json::Map<String, Value>) -> Result<(), String> {
    let role_ref = binding.get("roleRef");
    let role_kind = role_ref.and_then(|r| r.get("kind")).and_then(Value::as_str);
    if role_kind != Some("Role") {
        return Err(format!(
            "binds the {} `{}`; a tenant's RoleBinding may bind only a Role of its own namespace",
            role_kind.unwrap_or("role"),
            role_ref
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
        ));
    }
    let subjects = binding.get("subjects").and_then(Value::as_array);
    for (i, subject) in subjects.into_iter().flatten().enumerate() {
        let kind = subject
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind != "ServiceAccount" || subject.get("namespace").is_some() {
            return Err(format!(
                "names subject {i} ({kind} {}); a tenant's RoleBinding may name only ServiceAccounts of its own namespace, without `namespace`",
                subject.get("name").and_then(Value::as_str).unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// The file `helm.yaml` of a booking folder on an agent site: a Helm chart the site's
/// agent renders (`helm template`) and applies as the booking's deployer, because an
/// agent site runs no Helm controller. It is a file of the desired state, never a
/// cluster object (no `kustomization.yaml` lists it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentChart {
    /// `verbund.dev/v1`.
    pub api_version: String,
    /// `HelmChart`.
    pub kind: String,
    pub metadata: AgentChartMetadata,
    pub spec: AgentChartSpec,
}

impl AgentChart {
    pub const API_VERSION: &'static str = "verbund.dev/v1";
    pub const KIND: &'static str = "HelmChart";
    /// Its file name in a booking folder.
    pub const FILE: &'static str = "helm.yaml";
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentChartMetadata {
    /// The release name.
    pub name: String,
    /// The booking's namespace.
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentChartSpec {
    /// `https://…` or `http://…` (a Helm repository) or `oci://…` (a registry).
    pub repository: String,
    pub chart: String,
    pub version: String,
    /// The ServiceAccount of the namespace the rendered objects are applied as.
    pub service_account_name: String,
    pub values: Value,
    /// The sealed Secret of the booking's folder (`secrets.yaml`) whose key
    /// `values.yaml` the agent opens with the site's age identity and merges over
    /// `values` before rendering: the configuration the offering declares secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_secret: Option<String>,
}

/// What a pod of vendor content reads from its namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reference {
    ConfigMap(String),
    Secret(String),
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::ConfigMap(name) => write!(f, "ConfigMap `{name}`"),
            Reference::Secret(name) => write!(f, "Secret `{name}`"),
        }
    }
}

/// Every ConfigMap and Secret the pods of `object` (a Deployment, StatefulSet, Job or
/// CronJob) need to start: from `env`, `envFrom` and volumes, of containers and init
/// containers. References marked `optional: true` are left out: a pod starts without
/// them.
pub fn pod_references(object: &Value) -> Vec<Reference> {
    let pod = match object.get("kind").and_then(Value::as_str) {
        Some("Deployment" | "StatefulSet" | "Job") => object.pointer("/spec/template/spec"),
        Some("CronJob") => object.pointer("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    };
    let Some(pod) = pod else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let required = |r: &Value| !r.get("optional").and_then(Value::as_bool).unwrap_or(false);
    let name_of = |r: &Value, key: &str| r.get(key).and_then(Value::as_str).map(str::to_string);
    for list in ["containers", "initContainers"] {
        for container in pod
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for env in container
                .get("env")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let from = env.get("valueFrom");
                if let Some(r) = from
                    .and_then(|f| f.get("configMapKeyRef"))
                    .filter(|r| required(r))
                {
                    out.extend(name_of(r, "name").map(Reference::ConfigMap));
                }
                if let Some(r) = from
                    .and_then(|f| f.get("secretKeyRef"))
                    .filter(|r| required(r))
                {
                    out.extend(name_of(r, "name").map(Reference::Secret));
                }
            }
            for from in container
                .get("envFrom")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = from.get("configMapRef").filter(|r| required(r)) {
                    out.extend(name_of(r, "name").map(Reference::ConfigMap));
                }
                if let Some(r) = from.get("secretRef").filter(|r| required(r)) {
                    out.extend(name_of(r, "name").map(Reference::Secret));
                }
            }
        }
    }
    for volume in pod
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(r) = volume.get("configMap").filter(|r| required(r)) {
            out.extend(name_of(r, "name").map(Reference::ConfigMap));
        }
        if let Some(r) = volume.get("secret").filter(|r| required(r)) {
            out.extend(name_of(r, "secretName").map(Reference::Secret));
        }
        let sources = volume
            .pointer("/projected/sources")
            .and_then(Value::as_array);
        for source in sources.into_iter().flatten() {
            if let Some(r) = source.get("configMap").filter(|r| required(r)) {
                out.extend(name_of(r, "name").map(Reference::ConfigMap));
            }
            if let Some(r) = source.get("secret").filter(|r| required(r)) {
                out.extend(name_of(r, "name").map(Reference::Secret));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The references of `objects`' pods that none of `objects` and nothing in `provided`
/// satisfies: what would keep a pod from starting on a real cluster.
pub fn unmet_references(objects: &[Value], provided: &[Reference]) -> Vec<Reference> {
    let made: Vec<Reference> = objects
        .iter()
        .filter_map(|o| {
            let name = o.pointer("/metadata/name")?.as_str()?.to_string();
            match (o.get("apiVersion")?.as_str()?, o.get("kind")?.as_str()?) {
                ("v1", "ConfigMap") => Some(Reference::ConfigMap(name)),
                ("v1", "Secret") => Some(Reference::Secret(name)),
                _ => None,
            }
        })
        .collect();
    let mut out: Vec<Reference> = objects
        .iter()
        .flat_map(pod_references)
        .filter(|r| !made.contains(r) && !provided.contains(r))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Helm values that name a Secret the chart should read (`existingSecret`,
/// `existingSecretName`, … at any depth, case-insensitive, and the `secretName` of an
/// `existingSecret` object that is not disabled): their JSON pointer and the name. The
/// chart does not create these; the booking must get them.
pub fn secret_names_in_values(values: &Value) -> Vec<(String, String)> {
    fn walk(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let here = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                    let lower = key.to_ascii_lowercase();
                    let names_secret = lower.starts_with("existing")
                        && lower.contains("secret")
                        && !lower.ends_with("key");
                    match child {
                        Value::String(name) if names_secret && !name.is_empty() => {
                            out.push((here, name.clone()));
                        }
                        // `existingSecret: {enabled: true, secretName: …}` (Nextcloud's).
                        Value::Object(inner) if names_secret => {
                            let enabled =
                                inner.get("enabled").and_then(Value::as_bool) != Some(false);
                            match inner.get("secretName").and_then(Value::as_str) {
                                Some(name) if enabled && !name.is_empty() => {
                                    out.push((format!("{here}/secretName"), name.to_string()));
                                }
                                _ => walk(child, &here, out),
                            }
                        }
                        _ => walk(child, &here, out),
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(values, "", &mut out);
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(object: Value) -> Result<(), Refusal> {
        check_tenant_object(&object)
    }

    #[test]
    fn workloads_are_allowed() {
        for (api_version, kind) in [
            ("apps/v1", "Deployment"),
            ("v1", "Service"),
            ("v1", "ConfigMap"),
            ("batch/v1", "Job"),
            ("autoscaling/v2", "HorizontalPodAutoscaler"),
            ("rbac.authorization.k8s.io/v1", "Role"),
        ] {
            check(json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "a"}}))
                .unwrap();
        }
    }

    #[test]
    fn everything_else_is_refused_with_the_object_named() {
        for (api_version, kind) in [
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ("v1", "Namespace"),
            ("v1", "ResourceQuota"),
            ("networking.k8s.io/v1", "NetworkPolicy"),
            ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
            ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
            ("argoproj.io/v1alpha1", "Application"),
            ("external-secrets.io/v1", "ExternalSecret"),
            ("apps/v1", "DaemonSet"),
            ("v1", "Pod"),
            // A kind of the same name in another group is not the allowed one.
            ("example.org/v1", "Deployment"),
        ] {
            let e =
                check(json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}))
                    .unwrap_err();
            assert!(matches!(e, Refusal::Kind { .. }), "{kind}: {e}");
            assert!(e.to_string().contains(&format!("`{kind}` `x`")), "{e}");
        }
    }

    #[test]
    fn secrets_lists_and_nameless_objects_are_refused() {
        assert!(matches!(
            check(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})),
            Err(Refusal::Secret { .. })
        ));
        assert!(matches!(
            check(json!({"apiVersion": "v1", "kind": "ConfigMapList", "items": []})),
            Err(Refusal::List { .. })
        ));
        assert_eq!(
            check(json!({"apiVersion": "v1", "kind": "ConfigMap"})),
            Err(Refusal::NoName)
        );
        assert_eq!(check(json!({"kind": "ConfigMap"})), Err(Refusal::NoKind));

        assert_eq!(check(json!([])), Err(Refusal::NotAnObject));
        assert_eq!(
            check(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                         "data": {"DB_PASSWORD": "geheim"}})
            ),
            Err(Refusal::SecretValue {
                name: "c".into(),
                pointer: "/data/DB_PASSWORD".into()
            })
        );
    }

    #[test]
    fn roles_grant_only_what_the_deployer_holds_and_bind_only_their_namespace() {
        let role = |rules: Value| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                   "metadata": {"name": "r"}, "rules": rules})
        };
        check(role(json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}])))
            .unwrap();
        for rules in [
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
            json!([{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]),
            json!([{"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["create"]}]),
        ] {
            assert!(matches!(check(role(rules)), Err(Refusal::Rbac { .. })));
        }
        let binding = |role_ref: Value, subjects: Value| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "b"}, "roleRef": role_ref, "subjects": subjects})
        };
        let own_role =
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"});
        check(binding(
            own_role.clone(),
            json!([{"kind": "ServiceAccount", "name": "app"}]),
        ))
        .unwrap();
        for (role_ref, subjects) in [
            (
                json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"}),
                json!([]),
            ),
            (
                own_role.clone(),
                json!([{"kind": "User", "name": "mallory"}]),
            ),
            (
                own_role.clone(),
                json!([{"kind": "ServiceAccount", "name": "app", "namespace": "other-tenant"}]),
            ),
            (
                own_role,
                json!([{"kind": "Group", "name": "system:authenticated"}]),
            ),
        ] {
            let e = check(binding(role_ref, subjects)).unwrap_err();
            assert!(matches!(e, Refusal::Rbac { .. }), "{e}");
        }
    }

    #[test]
    fn pods_need_what_their_env_and_volumes_name() {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "db"}}]}],
                "containers": [{"name": "c",
                    "envFrom": [{"configMapRef": {"name": "cfg"}}, {"configMapRef": {"name": "opt", "optional": true}}],
                    "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                            {"name": "Y", "value": "plain"}]}],
                "volumes": [{"name": "v", "configMap": {"name": "files"}},
                            {"name": "p", "projected": {"sources": [{"secret": {"name": "tls"}}]}},
                            {"name": "t", "emptyDir": {}}]}}}
        });
        assert_eq!(
            pod_references(&deployment),
            vec![
                Reference::ConfigMap("cfg".into()),
                Reference::ConfigMap("files".into()),
                Reference::Secret("db".into()),
                Reference::Secret("tls".into()),
            ]
        );
        let files = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "files"}});
        assert_eq!(
            unmet_references(
                &[deployment, files],
                &[
                    Reference::ConfigMap("cfg".into()),
                    Reference::Secret("db".into())
                ]
            ),
            vec![Reference::Secret("tls".into())]
        );
    }

    #[test]
    fn values_name_secrets_by_existing_secret_keys() {
        let values = json!({"auth": {"existingSecret": "postgresql-credentials",
                                     "existingSecretPasswordKey": "password"},
                            "externalDatabase": {"existingSecretName": ""},
                            "list": [{"existingSecret": "a"}],
                            "db": {"existingSecret": {"enabled": true, "secretName": "b", "passwordKey": "p"}},
                            "off": {"existingSecret": {"enabled": false, "secretName": "c"}}});
        assert_eq!(
            secret_names_in_values(&values),
            vec![
                (
                    "/auth/existingSecret".to_string(),
                    "postgresql-credentials".to_string()
                ),
                ("/db/existingSecret/secretName".to_string(), "b".to_string()),
                ("/list/0/existingSecret".to_string(), "a".to_string()),
            ]
        );
    }

    #[test]
    fn the_deployer_role_covers_exactly_the_tenant_kinds_and_helm_storage() {
        for k in TENANT_KINDS {
            assert!(
                DEPLOYER_RULES.iter().any(|r| r.groups.contains(&k.group)
                    && r.resources.contains(&k.plural)
                    && r.verbs.contains(&"create")),
                "{}",
                k.kind
            );
        }
        let writable: Vec<(&str, &str)> = DEPLOYER_RULES
            .iter()
            .filter(|r| r.verbs.contains(&"create"))
            .flat_map(|r| {
                r.groups
                    .iter()
                    .flat_map(move |g| r.resources.iter().map(move |res| (*g, *res)))
            })
            .collect();
        for (group, resource) in writable {
            let listed = TENANT_KINDS
                .iter()
                .any(|k| k.group == group && k.plural == resource);
            assert!(
                listed || (group.is_empty() && resource == "secrets"),
                "the deployer may write `{resource}` but tenants may not own it"
            );
        }
    }
}
