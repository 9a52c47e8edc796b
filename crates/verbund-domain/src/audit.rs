//! The audit trail's hash chain.
//!
//! Each event's hash covers the previous event's hash and every field of the event,
//! serialised canonically (JSON objects with sorted keys), so that changing, removing or
//! reordering any stored event breaks the chain at that event.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A change to be recorded: who did what to which object, with the state before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub actor: String,
    /// Dotted verb, e.g. `site.create`, `offering.version.publish`.
    pub action: String,
    /// The object's kind and id, e.g. `site/dataport-hh-1`.
    pub object: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// A recorded, chained audit event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// Position in the chain, starting at 1.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub object: String,
    /// The object's state before the change, as JSON (an object for most kinds, a list
    /// for an account's roles); absent for creations.
    #[schema(value_type = Option<serde_json::Value>)]
    pub before: Option<Value>,
    /// The state after the change, as JSON; absent for deletions.
    #[schema(value_type = Option<serde_json::Value>)]
    pub after: Option<Value>,
    pub prev_hash: String,
    pub hash: String,
}

/// Canonical text of a timestamp inside the hash (millisecond precision, UTC).
pub fn canonical_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn canonical_json(v: &Option<Value>) -> String {
    let mut out = String::new();
    match v {
        Some(v) => write_canonical(v, &mut out),
        None => out.push_str("null"),
    }
    out
}

/// JSON with object keys sorted at every level, independent of how `serde_json` keeps
/// maps (a dependency may switch on its `preserve_order` feature).
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(x) = map.get(k) {
                    write_canonical(x, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Computes the hash of an event from its content and the previous hash.
pub fn event_hash(prev_hash: &str, seq: i64, at: &DateTime<Utc>, change: &Change) -> String {
    let mut h = Sha256::new();
    for part in [
        prev_hash,
        &seq.to_string(),
        &canonical_time(at),
        &change.actor,
        &change.action,
        &change.object,
        &canonical_json(&change.before),
        &canonical_json(&change.after),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

impl AuditEvent {
    /// Builds the event that follows `prev` (or starts the chain).
    pub fn chain(prev: Option<(i64, &str)>, at: DateTime<Utc>, change: Change) -> AuditEvent {
        let (seq, prev_hash) = match prev {
            Some((seq, hash)) => (seq + 1, hash.to_string()),
            None => (1, GENESIS.to_string()),
        };
        // Truncate to the precision that is hashed and stored.
        let at = DateTime::parse_from_rfc3339(&canonical_time(&at))
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(at);
        let hash = event_hash(&prev_hash, seq, &at, &change);
        AuditEvent {
            seq,
            at,
            actor: change.actor,
            action: change.action,
            object: change.object,
            before: change.before,
            after: change.after,
            prev_hash,
            hash,
        }
    }

    fn recomputed_hash(&self) -> String {
        let change = Change {
            actor: self.actor.clone(),
            action: self.action.clone(),
            object: self.object.clone(),
            before: self.before.clone(),
            after: self.after.clone(),
        };
        event_hash(&self.prev_hash, self.seq, &self.at, &change)
    }
}

/// The first place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error, ToSchema)]
#[error("audit chain broken at event {seq}: {reason}")]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

/// Incremental chain verification, so that a store can stream millions of events.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS.to_string(),
        }
    }
}

impl ChainVerifier {
    /// Checks the next event in sequence order.
    pub fn push(&mut self, e: &AuditEvent) -> Result<(), BrokenLink> {
        if e.seq != self.expected_seq {
            return Err(BrokenLink {
                seq: self.expected_seq,
                reason: format!(
                    "event {} is missing (found {} next)",
                    self.expected_seq, e.seq
                ),
            });
        }
        if e.prev_hash != self.prev_hash {
            return Err(BrokenLink {
                seq: e.seq,
                reason: "its prev_hash does not match the previous event's hash".into(),
            });
        }
        if e.recomputed_hash() != e.hash {
            return Err(BrokenLink {
                seq: e.seq,
                reason: "its content does not match its hash (the event was altered)".into(),
            });
        }
        self.expected_seq += 1;
        self.prev_hash = e.hash.clone();
        Ok(())
    }

    /// How many events were verified.
    pub fn verified(&self) -> i64 {
        self.expected_seq - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn change(n: u32) -> Change {
        Change {
            actor: "user/admin".into(),
            action: "site.create".into(),
            object: format!("site/s{n}"),
            before: None,
            after: Some(json!({"n": n, "b": [1, 2], "a": "x"})),
        }
    }

    fn chain(n: u32) -> Vec<AuditEvent> {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut out: Vec<AuditEvent> = Vec::new();
        for i in 0..n {
            let prev = out.last().map(|e| (e.seq, e.hash.as_str()));
            let e = AuditEvent::chain(prev, t, change(i));
            out.push(e);
        }
        out
    }

    fn verify(events: &[AuditEvent]) -> Result<i64, BrokenLink> {
        let mut v = ChainVerifier::default();
        for e in events {
            v.push(e)?;
        }
        Ok(v.verified())
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn altered_event_is_named() {
        let mut c = chain(5);
        c[2].after = Some(json!({"n": 99}));
        assert_eq!(verify(&c).unwrap_err().seq, 3);
    }

    #[test]
    fn removed_event_is_named() {
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(&c).unwrap_err().seq, 2);
    }

    #[test]
    fn key_order_does_not_matter() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[{"f":1,"e":2}],"c":"x"}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"c":"x","d":[{"e":2,"f":1}]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&Some(a.clone())), canonical_json(&Some(b)));
        assert_eq!(
            canonical_json(&Some(a)),
            r#"{"a":{"c":"x","d":[{"e":2,"f":1}]},"b":1}"#
        );
    }
}
