//! The rule that keeps secrets out of the desired-state repository in plaintext, checked
//! where input arrives (a booking's configuration, a version's Helm values, a package's
//! ConfigMaps) and again by the renderer — one function decides for all of them
//! ([`find_secret`]).
//!
//! Everything rendered is committed to Git and readable by the site that pulls it, so a
//! secret travels only **by declaration**:
//!
//! 1. A configuration value is *declared secret* when the offering's configuration
//!    schema, at the value's location, says `writeOnly: true` or `format: password`
//!    (following `properties`, `patternProperties`, `additionalProperties`, `items`,
//!    `prefixItems`, local `$ref`s and `allOf`/`anyOf`/`oneOf`; a secret object or list
//!    is secret as a whole). [`declared_secrets`] names them. Such a value must be a
//!    string; it is kept apart from the booking's configuration ([`split_secrets`]),
//!    never returned by the API, and reaches the site only sealed for that site (SOPS
//!    with the site's age recipient, see `verbund-seal` and the renderer).
//! 2. Everything else is delivered in plaintext, so values that look like secrets are
//!    refused there:
//!    - a string under a key that names a secret (see [`looks_like_secret_key`]:
//!      `password`, `passwd`, `Passwort`, `Kennwort`, `secret`, `token`, `credentials`,
//!      `passphrase`, `geheim`, a word `pass`, `pwd` or `pw`, or ending in `key`) — also
//!      each string in a list under such a key. Keys that *name* a secret rather than hold
//!      one pass: those starting with `existing` or ending in `name`, `ref`, `file` or
//!      `path`, and `passwordKey`, `usernameKey`, `tokenKey` (the key within a Secret);
//!    - the `value` of an object whose `name` (or `key`) names a secret, as in a
//!      container's `env: [{name: DB_PASSWORD, value: …}]`;
//!    - a URL with a password in its user information (`postgres://u:secret@host/db`),
//!      anywhere in a string;
//!    - a `key=value` pair whose key names a secret inside a string, as in connection
//!      strings (`host=db password=secret`, `Server=x;Password=y`, `?token=…`).
//!
//!    Placeholders (`${DB_PASSWORD}`, `$(DB_PASSWORD)`, `{{ .Values.x }}`), empty strings,
//!    numbers, booleans and `null` pass.
//!
//!    A key the schema *names* (reached through `properties` only, and `items`) and does
//!    not declare secret is the vendor's declaration that it is no secret (Keycloak's
//!    `password_policy`): the key-name rule is not applied to it. The rules on values
//!    (`env` pairs, URLs, connection strings) apply wherever a value is not declared
//!    secret. Keys under `additionalProperties` or `patternProperties` are chosen by the
//!    tenant, not named by the vendor, so the key-name rule applies to them.
//!
//! The error names the JSON pointer.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// What a configuration value holds that may not be delivered in plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A string under a key that names a secret (or in a list under it).
    SecretKey,
    /// The `value` of a `{name, value}` pair whose name names a secret.
    SecretPair,
    /// A URL with a password in its user information.
    UrlPassword,
    /// A `key=value` pair whose key names a secret, inside a string.
    SecretAssignment,
    /// A value the schema declares secret that is not a string.
    SecretNotString,
}

impl Reason {
    /// Why the value is refused, as a sentence without the subject.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::SecretKey => "its key names a secret",
            Reason::SecretPair => "its pair's name names a secret",
            Reason::UrlPassword => "it holds a URL with a password (`user:…@host`)",
            Reason::SecretAssignment => "it assigns a secret (`password=…`) inside the text",
            Reason::SecretNotString => {
                "a value the offering's schema declares secret must be a string"
            }
        }
    }
}

/// A value that may not be delivered in plaintext: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// JSON pointer relative to the value checked.
    pub pointer: String,
    pub reason: Reason,
}

impl Finding {
    /// The refusal's message for a booking's configuration (`what` = "booking") or a
    /// package (`what` = "package").
    pub fn message(&self, what: &str) -> String {
        match self.reason {
            Reason::SecretNotString => self.reason.describe().to_string(),
            reason => format!(
                "a secret's value may not be part of a {what} ({}): everything but a value \
                 the offering's configuration schema declares secret (`writeOnly: true` or \
                 `format: password`) is delivered through Git in plaintext; declare it \
                 secret, or name a secret instead (e.g. `existingSecret`)",
                reason.describe()
            ),
        }
    }
}

/// Words that make a key name a secret wherever they occur in it.
const SECRET_WORDS: [&str; 9] = [
    "password",
    "passwd",
    "passwort",
    "kennwort",
    "secret",
    "token",
    "credential",
    "passphrase",
    "geheim",
];

/// Words of a key (split at `_`, `-`, `.`, spaces and camel case) that name a secret.
const SECRET_PARTS: [&str; 3] = ["pass", "pwd", "pw"];

/// Endings of keys that name a secret rather than hold one.
const REFERENCE_ENDINGS: [&str; 7] = [
    "name",
    "ref",
    "file",
    "path",
    "passwordkey",
    "usernamekey",
    "tokenkey",
];

/// Whether a key of a configuration object names a secret's value (see the module).
pub fn looks_like_secret_key(key: &str) -> bool {
    let lower = key.to_lowercase();
    let compact: String = lower.chars().filter(|c| c.is_alphanumeric()).collect();
    let secretish = SECRET_WORDS.iter().any(|word| compact.contains(word))
        || compact.ends_with("key")
        || words(key)
            .iter()
            .any(|w| SECRET_PARTS.contains(&w.as_str()));
    // `passwordKey`, `userPasswordKey`, `usernameKey`, `tokenKey`: the key *within* a
    // secret that holds the password or token (Helm charts' convention), a name and never
    // the value; `existingSecret`, `secretName`, `tokenSecretRef`, `passwordFile` name a
    // secret.
    let reference = compact.starts_with("existing")
        || REFERENCE_ENDINGS.iter().any(|end| compact.ends_with(end));
    secretish && !reference
}

/// The words of a key, lower case: split at anything not alphanumeric and where a lower
/// case letter or digit is followed by an upper case one (`smtpPass` → `smtp`, `pass`).
fn words(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in key.chars() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Whether a value stands for a secret defined elsewhere rather than holding one.
fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    v.starts_with("${") || v.starts_with("$(") || v.starts_with("{{")
}

/// Whether `s` holds a URL with a non-empty password in its user information.
fn has_url_password(s: &str) -> bool {
    s.match_indices("://").any(|(at, _)| {
        let rest = s.get(at + 3..).unwrap_or_default();
        let authority = rest
            .split(['/', '?', '#', ' ', '\t', '\n', '"', '\''])
            .next()
            .unwrap_or_default();
        authority
            .rsplit_once('@')
            .and_then(|(userinfo, _)| userinfo.split_once(':'))
            .is_some_and(|(_, password)| !password.is_empty() && !is_placeholder(password))
    })
}

/// Whether `s` holds `key=value` with a key that names a secret and a value.
fn has_secret_assignment(s: &str) -> bool {
    s.split([';', '&', '?', ' ', '\t', '\n', ','])
        .filter_map(|part| part.split_once('='))
        .any(|(key, value)| {
            let key = key.trim();
            let value = value.trim().trim_matches(['\'', '"']);
            !key.is_empty()
                && !value.is_empty()
                && !is_placeholder(value)
                && looks_like_secret_key(key)
        })
}

/// Escapes a key for a JSON pointer (RFC 6901).
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Undoes [`escape`].
pub fn unescape(part: &str) -> String {
    part.replace("~1", "/").replace("~0", "~")
}

/// The schemas that apply at one location of a value.
#[derive(Debug, Clone, Default)]
struct At<'s> {
    schemas: Vec<&'s Value>,
    /// Every step from the root went through `properties` (or `items` below such a step).
    named: bool,
}

/// Walks a value along its schema (see the module for what is followed).
struct Schema<'s> {
    root: Option<&'s Value>,
}

/// How deep `$ref`s and combinators are followed at one location (a recursive schema
/// would otherwise never end).
const MAX_EXPANSION: usize = 32;

impl<'s> Schema<'s> {
    /// The root location.
    fn root(&self) -> At<'s> {
        let mut schemas = Vec::new();
        if let Some(root) = self.root {
            self.expand(root, &mut schemas, 0);
        }
        At {
            named: !schemas.is_empty(),
            schemas,
        }
    }

    /// `schema` and what it pulls in by `$ref` and `allOf`/`anyOf`/`oneOf`.
    fn expand(&self, schema: &'s Value, out: &mut Vec<&'s Value>, depth: usize) {
        let Value::Object(map) = schema else {
            return;
        };
        if depth > MAX_EXPANSION || out.iter().any(|s| std::ptr::eq(*s, schema)) {
            return;
        }
        out.push(schema);
        if let Some(target) = map
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|pointer| self.root?.pointer(pointer))
        {
            self.expand(target, out, depth + 1);
        }
        for combinator in ["allOf", "anyOf", "oneOf"] {
            for sub in map
                .get(combinator)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.expand(sub, out, depth + 1);
            }
        }
    }

    /// Whether a location is declared secret.
    fn is_secret(at: &At<'_>) -> bool {
        at.schemas.iter().any(|s| {
            s.get("writeOnly").and_then(Value::as_bool) == Some(true)
                || s.get("format").and_then(Value::as_str) == Some("password")
        })
    }

    /// The location of `key` inside an object at `at`.
    fn property(&self, at: &At<'s>, key: &str) -> At<'s> {
        let mut schemas = Vec::new();
        let mut named = false;
        for s in &at.schemas {
            let mut matched = false;
            if let Some(p) = s.get("properties").and_then(|p| p.get(key)) {
                self.expand(p, &mut schemas, 0);
                named = true;
                matched = true;
            }
            if let Some(Value::Object(patterns)) = s.get("patternProperties") {
                for (pattern, p) in patterns {
                    // A pattern this engine cannot read may match: its secrets count.
                    if regex::Regex::new(pattern).map_or(true, |r| r.is_match(key)) {
                        self.expand(p, &mut schemas, 0);
                        matched = true;
                    }
                }
            }
            if !matched {
                if let Some(p) = s.get("additionalProperties") {
                    self.expand(p, &mut schemas, 0);
                }
            }
        }
        At {
            schemas,
            named: at.named && named,
        }
    }

    /// The location of element `index` of a list at `at`.
    fn item(&self, at: &At<'s>, index: usize) -> At<'s> {
        let mut schemas = Vec::new();
        for s in &at.schemas {
            let tuple = s
                .get("prefixItems")
                .or_else(|| s.get("items").filter(|i| i.is_array()))
                .and_then(Value::as_array);
            match tuple.and_then(|t| t.get(index)) {
                Some(p) => self.expand(p, &mut schemas, 0),
                None => {
                    let rest = if s.get("prefixItems").is_some() {
                        s.get("items")
                    } else if s.get("items").is_some_and(Value::is_array) {
                        s.get("additionalItems")
                    } else {
                        s.get("items")
                    };
                    if let Some(p) = rest {
                        self.expand(p, &mut schemas, 0);
                    }
                }
            }
        }
        At {
            schemas,
            named: at.named,
        }
    }
}

/// What a walk looks for.
#[derive(Default)]
struct Walk<'v> {
    /// The declared-secret values, by pointer.
    secrets: Vec<(String, &'v Value)>,
    /// The first value refused, in key order.
    finding: Option<Finding>,
}

impl<'v> Walk<'v> {
    fn found(&mut self, pointer: String, reason: Reason) {
        if self.finding.is_none() {
            self.finding = Some(Finding { pointer, reason });
        }
    }

    /// `key` is the nearest object key above (list elements inherit their list's).
    fn visit(
        &mut self,
        schema: &Schema<'_>,
        at: &At<'_>,
        value: &'v Value,
        pointer: &str,
        key: Option<&str>,
    ) {
        if Schema::is_secret(at) {
            match value {
                Value::Null => {}
                Value::String(_) => self.secrets.push((pointer.to_string(), value)),
                _ => self.found(pointer.to_string(), Reason::SecretNotString),
            }
            return;
        }
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for k in keys {
                    let Some(child) = map.get(k) else { continue };
                    let child_at = schema.property(at, k);
                    let here = format!("{pointer}/{}", escape(k));
                    if k == "value"
                        && !Schema::is_secret(&child_at)
                        && is_secret_pair(map)
                        && child
                            .as_str()
                            .is_some_and(|s| !s.is_empty() && !is_placeholder(s))
                    {
                        self.found(here.clone(), Reason::SecretPair);
                    }
                    self.visit(schema, &child_at, child, &here, Some(k));
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let child_at = schema.item(at, i);
                    self.visit(schema, &child_at, item, &format!("{pointer}/{i}"), key);
                }
            }
            Value::String(s) if !s.is_empty() => {
                if !at.named && key.is_some_and(looks_like_secret_key) && !is_placeholder(s) {
                    self.found(pointer.to_string(), Reason::SecretKey);
                } else if has_url_password(s) {
                    self.found(pointer.to_string(), Reason::UrlPassword);
                } else if has_secret_assignment(s) {
                    self.found(pointer.to_string(), Reason::SecretAssignment);
                }
            }
            _ => {}
        }
    }
}

/// Whether an object is a `{name|key: <a secret's name>, value: …}` pair.
fn is_secret_pair(map: &Map<String, Value>) -> bool {
    ["name", "key"].iter().any(|field| {
        map.get(*field)
            .and_then(Value::as_str)
            .is_some_and(looks_like_secret_key)
    })
}

fn walk<'v>(schema: Option<&Value>, value: &'v Value) -> Walk<'v> {
    let schema = Schema { root: schema };
    let mut walk = Walk::default();
    walk.visit(&schema, &schema.root(), value, "", None);
    walk
}

/// The first value of `value` that may not be delivered in plaintext, in key order:
/// a literal secret where `schema` (a configuration schema; `None` for a package's
/// values or a ConfigMap's data) declares none, or a declared secret that is not a
/// string. Declared-secret strings are not findings: they are delivered sealed.
pub fn find_secret(schema: Option<&Value>, value: &Value) -> Option<Finding> {
    walk(schema, value).finding
}

/// The JSON pointer (relative to `value`) of the first literal secret in `value`, which
/// no schema declares, in key order, if any.
pub fn find_literal_secret(value: &Value) -> Option<String> {
    find_secret(None, value).map(|f| f.pointer)
}

/// The JSON pointers of the values `schema` declares secret in `config` (the outermost
/// where a secret object holds more), sorted; `null`s are left out.
pub fn declared_secrets<'c>(schema: &Value, config: &'c Value) -> Vec<(String, &'c Value)> {
    let mut secrets = walk(Some(schema), config).secrets;
    secrets.sort_by(|a, b| a.0.cmp(&b.0));
    secrets
}

/// Whether a configuration schema declares any secret at all (`writeOnly: true` or
/// `format: password` anywhere in it): its offering's bookings need a site that can
/// receive sealed secrets (see [`crate::directory::SiteSpec::secret_delivery`]).
pub fn declares_secrets(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            map.get("writeOnly").and_then(Value::as_bool) == Some(true)
                || map.get("format").and_then(Value::as_str) == Some("password")
                || map.values().any(declares_secrets)
        }
        Value::Array(items) => items.iter().any(declares_secrets),
        _ => false,
    }
}

/// A booking's declared-secret values, by JSON pointer into its configuration.
pub type SecretValues = BTreeMap<String, String>;

/// Splits a configuration into what may be stored and shown (the declared secrets taken
/// out) and the declared-secret strings by pointer. Empty strings count as no secret.
pub fn split_secrets(schema: &Value, config: &Value) -> (Value, SecretValues) {
    let mut public = config.clone();
    let mut secrets = SecretValues::new();
    for (pointer, value) in declared_secrets(schema, config) {
        if let Some(s) = value.as_str().filter(|s| !s.is_empty()) {
            secrets.insert(pointer.clone(), s.to_string());
        }
        remove(&mut public, &pointer);
    }
    (public, secrets)
}

/// A booking's new configuration with its stored secrets carried over: what may be
/// stored and shown (the declared secrets taken out) and the declared-secret values to
/// keep. A value `config` gives replaces the stored one and an empty string removes it;
/// a stored value that `config` leaves out is kept (the API never returns it, so a
/// client that sends back what it read keeps it), as long as its parent is still in
/// `config` and the schema still declares it secret.
pub fn carry_secrets(
    schema: &Value,
    config: &Value,
    stored: &SecretValues,
) -> (Value, SecretValues) {
    let mentioned: BTreeSet<String> = declared_secrets(schema, config)
        .into_iter()
        .map(|(pointer, _)| pointer)
        .collect();
    let (public, given) = split_secrets(schema, config);
    let parent_present = |pointer: &str| {
        let parent = pointer.rsplit_once('/').map_or("", |(parent, _)| parent);
        public.pointer(parent).is_some_and(Value::is_object)
    };
    let mut values: SecretValues = stored
        .iter()
        .filter(|(pointer, _)| !mentioned.contains(*pointer) && parent_present(pointer))
        .map(|(pointer, value)| (pointer.clone(), value.clone()))
        .collect();
    values.extend(given);
    let still_declared: BTreeSet<String> =
        declared_secrets(schema, &merge_secrets(&public, &values))
            .into_iter()
            .map(|(pointer, _)| pointer)
            .collect();
    values.retain(|pointer, _| still_declared.contains(pointer));
    (public, values)
}

/// Puts declared-secret values back into a configuration (the inverse of
/// [`split_secrets`]); pointers whose parent is missing create objects on the way (lists
/// are never grown).
pub fn merge_secrets(config: &Value, secrets: &SecretValues) -> Value {
    let mut out = config.clone();
    for (pointer, value) in secrets {
        set(&mut out, pointer, Value::String(value.clone()));
    }
    out
}

fn parts(pointer: &str) -> Vec<String> {
    pointer.split('/').skip(1).map(unescape).collect()
}

fn remove(value: &mut Value, pointer: &str) {
    let mut parts = parts(pointer);
    let Some(last) = parts.pop() else { return };
    let mut here = value;
    for part in &parts {
        let next = match here {
            Value::Object(map) => map.get_mut(part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => here = n,
            None => return,
        }
    }
    match here {
        Value::Object(map) => {
            map.remove(&last);
        }
        // A list keeps its length: the element becomes `null`, which every reader of a
        // list position takes as "not set".
        Value::Array(items) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *slot = Value::Null;
            }
        }
        _ => {}
    }
}

fn set(value: &mut Value, pointer: &str, new: Value) {
    let parts = parts(pointer);
    let mut here = value;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if here.is_null() {
            *here = Value::Object(Map::new());
        }
        let slot = match here {
            Value::Object(map) => Some(map.entry(part.clone()).or_insert(Value::Null)),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        };
        let Some(slot) = slot else { return };
        if last {
            *slot = new;
            return;
        }
        here = slot;
    }
}

#[cfg(test)]
mod tests;
