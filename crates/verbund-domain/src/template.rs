//! Nachnutzung: an organisation publishes a booking's configuration as a *template*
//! (its configuration without secrets — declared secrets are never part of a booking's
//! configuration — and its plan), and others adopt it: a booking pre-filled from the
//! template, whose differences from it are shown and validated as any configuration is.
//! Each change of a template is a new version; an adopter's booking keeps the version it
//! adopted (its lineage), so that it sees what changed since and can take it over.
//!
//! Pure: what a template may say ([`TemplateSpec::validate`]), who sees it
//! ([`Visibility`], [`visible_to`]), and what differs between two configurations
//! ([`differences`]), the one reading of "the differences an adopter makes" and of "what
//! changed in the template since".

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::name::{check_name, check_text, DISPLAY_NAME_MAX};
use crate::{Invalid, Result};

/// Who may see and adopt a template, besides its publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Visibility {
    /// The organisations of the publisher's Land.
    Land,
    /// Every organisation of the federation.
    Everyone,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Land => "land",
            Visibility::Everyone => "everyone",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        [Visibility::Land, Visibility::Everyone]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// The longest description of a template.
pub const TEMPLATE_DESCRIPTION_MAX: usize = 2_000;

/// What an organisation submits to publish a booking's configuration as a template, or
/// to change its template (a new version from the booking as it is then).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// The booking whose configuration and plan the template carries (one of the
    /// publishing organisation's).
    pub booking: String,
    /// Stable identifier among the organisation's templates (DNS-1123 label).
    #[schema(schema_with = crate::name::name_schema)]
    pub name: String,
    #[schema(schema_with = crate::name::display_name_schema)]
    pub display_name: String,
    #[serde(default)]
    #[schema(schema_with = description_schema)]
    pub description: String,
    pub visibility: Visibility,
}

fn description_schema() -> utoipa::openapi::schema::Object {
    crate::name::bounded_schema(&crate::name::NUL_FREE, TEMPLATE_DESCRIPTION_MAX)
}

impl TemplateSpec {
    pub fn validate(&self) -> Result<()> {
        check_name("/name", &self.name)?;
        check_text("/display_name", &self.display_name, DISPLAY_NAME_MAX)?;
        if self.description.chars().count() > TEMPLATE_DESCRIPTION_MAX {
            return Err(Invalid::new(
                "/description",
                format!("must be at most {TEMPLATE_DESCRIPTION_MAX} characters"),
            ));
        }
        Ok(())
    }
}

/// A published template, at its current version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Template {
    pub id: String,
    /// The publishing organisation's id.
    pub organisation: String,
    pub offering: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub visibility: Visibility,
    /// The plan and configuration of its current version.
    pub plan: String,
    #[schema(value_type = Object)]
    pub config: Value,
    /// Counts from 1; each change of its plan or configuration is the next.
    pub version: u32,
    /// How many organisations run a booking adopted from it.
    pub adopters: u64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Where a booking's configuration came from: the template and the version adopted (or
/// taken over last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Lineage {
    pub template: String,
    pub version: u32,
    /// The adopting organisation's id.
    pub organisation: String,
    pub adopted_at: chrono::DateTime<chrono::Utc>,
}

/// Whether an organisation of Land `land` sees a template of `visibility` published by an
/// organisation of Land `publisher_land` (its publisher always sees its own).
pub fn visible_to(
    visibility: Visibility,
    publisher_land: Option<&str>,
    land: Option<&str>,
) -> bool {
    match visibility {
        Visibility::Everyone => true,
        Visibility::Land => publisher_land.is_some() && publisher_land == land,
    }
}

/// The JSON pointers at which `b` differs from `a`, sorted: objects are compared key by
/// key at every depth, anything else (arrays included) as a whole. A key present on one
/// side only is a difference at its pointer.
pub fn differences(a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(a, b, String::new(), &mut out);
    out.sort();
    out
}

fn walk(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let here = format!("{at}/{}", crate::booking::pointer_token(k));
                match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => walk(v, w, here, out),
                    _ => out.push(here),
                }
            }
        }
        _ if a != b => out.push(if at.is_empty() { "/".into() } else { at }),
        _ => {}
    }
}

/// `config` with the template's changes from `before` to `after` taken over: each value
/// that changed in the template is set (or removed) at its pointer; everything the
/// adopter set elsewhere stays.
pub fn take_over(config: &Value, before: &Value, after: &Value) -> Value {
    let mut out = config.clone();
    for pointer in differences(before, after) {
        let tokens: Vec<String> = pointer
            .split('/')
            .skip(1)
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        set_at(&mut out, &tokens, lookup(after, &tokens));
    }
    out
}

fn lookup<'a>(value: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    tokens.iter().try_fold(value, |v, t| v.get(t.as_str()))
}

/// Sets (or with `None` removes) the value at `tokens`, creating objects on the way.
fn set_at(value: &mut Value, tokens: &[String], new: Option<&Value>) {
    let Some((last, path)) = tokens.split_last() else {
        if let Some(n) = new {
            *value = n.clone();
        }
        return;
    };
    let mut here = value;
    for t in path {
        if !here.is_object() {
            *here = Value::Object(Default::default());
        }
        let Value::Object(map) = here else { return };
        here = map
            .entry(t.clone())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    if !here.is_object() {
        *here = Value::Object(Default::default());
    }
    if let Value::Object(map) = here {
        match new {
            Some(n) => {
                map.insert(last.clone(), n.clone());
            }
            None => {
                map.remove(last);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_are_pointers_at_every_depth() {
        let a = json!({"domain": "a.de", "mail": {"host": "m", "port": 25}, "list": [1, 2]});
        let b = json!({"domain": "b.de", "mail": {"host": "m"}, "list": [1, 3], "neu": true});
        assert_eq!(
            differences(&a, &b),
            ["/domain", "/list", "/mail/port", "/neu"]
        );
        assert!(differences(&a, &a).is_empty());
    }

    #[test]
    fn taking_over_keeps_what_the_adopter_set_elsewhere() {
        let before = json!({"rate": 90, "mail": {"host": "alt"}, "gone": 1});
        let after = json!({"rate": 120, "mail": {"host": "neu"}, "added": {"x": 1}});
        let mine = json!({"rate": 90, "mail": {"host": "alt"}, "gone": 1, "town": "Haar"});
        assert_eq!(
            take_over(&mine, &before, &after),
            json!({"rate": 120, "mail": {"host": "neu"}, "added": {"x": 1}, "town": "Haar"})
        );
    }

    #[test]
    fn land_templates_stay_in_their_land() {
        assert!(visible_to(Visibility::Everyone, Some("09"), Some("01")));
        assert!(visible_to(Visibility::Land, Some("09"), Some("09")));
        assert!(!visible_to(Visibility::Land, Some("09"), Some("01")));
        assert!(!visible_to(Visibility::Land, None, None));
    }
}
