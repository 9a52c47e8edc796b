//! A booking form generated from an offering's JSON Schema, and its answers turned back
//! into the configuration the API validates.
//!
//! Each top-level property becomes one control: text (with the schema's pattern and
//! length), number (minimum, maximum), checkbox (boolean), a select (enum), a group of
//! checkboxes (array of enum), or a JSON text area for anything deeper. The portal never
//! validates on its own: the API's validation against the schema decides, and its error
//! (a JSON pointer into the configuration) is shown at the control it names.

use serde_json::{Map, Value};
use verbund_domain::booking::{ConfigFault, ConfigProblem};

use crate::i18n::Lang;

/// What kind of control a property gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Text,
    Integer,
    Number,
    Checkbox,
    Select(Vec<String>),
    Choices(Vec<String>),
    Json,
}

/// One control of the form, with what the person entered (or the schema's default).
#[derive(Debug, Clone)]
pub struct Field {
    /// The property's name; the control's name is `cfg.<name>`, its id `cfg-<name>`.
    pub name: String,
    pub label: String,
    pub hint: Option<String>,
    pub kind: Kind,
    pub required: bool,
    pub pattern: Option<String>,
    pub min: Option<String>,
    pub max: Option<String>,
    /// The entered text (text, numbers, JSON), or the chosen values (checkbox groups).
    pub value: String,
    pub chosen: Vec<String>,
    pub error: Option<String>,
}

impl Field {
    pub fn id(&self) -> String {
        format!("cfg-{}", self.name)
    }

    /// The ids of the hint and the error shown with the control (only those present).
    pub fn described_by(&self) -> String {
        let mut ids = Vec::new();
        if self.hint.is_some() {
            ids.push(format!("{}-hint", self.id()));
        }
        if self.error.is_some() {
            ids.push(format!("{}-error", self.id()));
        }
        ids.join(" ")
    }

    pub fn is_number(&self) -> bool {
        matches!(self.kind, Kind::Integer | Kind::Number)
    }

    pub fn is_checkbox(&self) -> bool {
        matches!(self.kind, Kind::Checkbox)
    }

    pub fn is_json(&self) -> bool {
        matches!(self.kind, Kind::Json)
    }

    pub fn options(&self) -> &[String] {
        match &self.kind {
            Kind::Select(o) => o,
            _ => &[],
        }
    }

    pub fn choices(&self) -> &[String] {
        match &self.kind {
            Kind::Choices(o) => o,
            _ => &[],
        }
    }

    pub fn is_chosen(&self, v: &str) -> bool {
        self.chosen.iter().any(|c| c == v)
    }

    pub fn step(&self) -> &'static str {
        if matches!(self.kind, Kind::Integer) {
            "1"
        } else {
            "any"
        }
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn enum_of(schema: &Value) -> Option<Vec<String>> {
    schema
        .get("enum")
        .and_then(Value::as_array)
        .map(|e| e.iter().map(text_of).collect())
}

/// The form for `schema`, pre-filled from `config` (the person's last answers) or, for
/// an empty `config`, the schema's defaults.
pub fn fields(schema: &Value, config: &Value) -> Vec<Field> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, p)| {
            let ty = p.get("type").and_then(Value::as_str).unwrap_or("");
            let kind = if let Some(options) = enum_of(p) {
                Kind::Select(options)
            } else {
                match ty {
                    "string" => Kind::Text,
                    "integer" => Kind::Integer,
                    "number" => Kind::Number,
                    "boolean" => Kind::Checkbox,
                    "array" => match p.get("items").and_then(enum_of) {
                        Some(options) => Kind::Choices(options),
                        None => Kind::Json,
                    },
                    _ => Kind::Json,
                }
            };
            let given = config.get(name).or_else(|| p.get("default"));
            let (value, chosen) = match (&kind, given) {
                (Kind::Choices(_), Some(Value::Array(a))) => {
                    (String::new(), a.iter().map(text_of).collect())
                }
                (Kind::Json, Some(v)) => (
                    serde_json::to_string_pretty(v).unwrap_or_default(),
                    Vec::new(),
                ),
                (_, Some(v)) => (text_of(v), Vec::new()),
                (_, None) => (String::new(), Vec::new()),
            };
            let num = |k: &str| p.get(k).map(text_of);
            Field {
                name: name.clone(),
                label: p
                    .get("title")
                    .and_then(Value::as_str)
                    .map_or_else(|| humanize(name), str::to_string),
                hint: p
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                required: required.contains(&name.as_str()),
                pattern: p.get("pattern").and_then(Value::as_str).map(str::to_string),
                min: num("minimum"),
                max: num("maximum"),
                kind,
                value,
                chosen,
                error: None,
            }
        })
        .collect()
}

/// `admin_email` → `Admin email`.
fn humanize(name: &str) -> String {
    let s = name.replace(['_', '-'], " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

/// The configuration the form's answers describe. Values that do not parse as their
/// type are passed on as text, so that the API's schema validation names them.
pub fn config(schema: &Value, answers: &[(String, String)]) -> Value {
    let mut out = Map::new();
    for f in fields(schema, &Value::Null) {
        let key = format!("cfg.{}", f.name);
        let given: Vec<&str> = answers
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        let first = given.first().map(|s| s.trim()).unwrap_or("");
        let value = match &f.kind {
            Kind::Checkbox => Value::Bool(!given.is_empty()),
            Kind::Choices(_) => Value::Array(
                given
                    .iter()
                    .map(|v| Value::String((*v).to_string()))
                    .collect(),
            ),
            _ if first.is_empty() => continue,
            Kind::Integer => first
                .parse::<i64>()
                .map_or_else(|_| Value::String(first.into()), Value::from),
            Kind::Number => first
                .parse::<f64>()
                .ok()
                .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                .unwrap_or_else(|| Value::String(first.into())),
            Kind::Json => {
                serde_json::from_str(first).unwrap_or_else(|_| Value::String(first.into()))
            }
            Kind::Text | Kind::Select(_) => Value::String(first.into()),
        };
        out.insert(f.name, value);
    }
    Value::Object(out)
}

/// A configuration's fault in plain words, for the control it concerns.
pub fn fault_text(fault: &ConfigFault, lang: Lang) -> String {
    use ConfigFault as F;
    match (fault, lang) {
        (F::Required { .. }, Lang::De) => "Bitte ausfüllen.".into(),
        (F::Required { .. }, Lang::En) => "Please fill this in.".into(),
        (F::Form, Lang::De) => "Die Eingabe hat nicht das erwartete Format.".into(),
        (F::Form, Lang::En) => "This does not have the expected form.".into(),
        (F::TooShort { min }, Lang::De) => format!("Bitte mindestens {min} Zeichen eingeben."),
        (F::TooShort { min }, Lang::En) => format!("Please enter at least {min} characters."),
        (F::TooLong { max }, Lang::De) => format!("Bitte höchstens {max} Zeichen eingeben."),
        (F::TooLong { max }, Lang::En) => format!("Please enter at most {max} characters."),
        (F::TooSmall { min }, Lang::De) => format!("Bitte eine Zahl ab {min} eingeben."),
        (F::TooSmall { min }, Lang::En) => format!("Please enter a number from {min}."),
        (F::TooLarge { max }, Lang::De) => format!("Bitte eine Zahl bis {max} eingeben."),
        (F::TooLarge { max }, Lang::En) => format!("Please enter a number up to {max}."),
        (F::NotAllowed, Lang::De) => "Bitte einen der angebotenen Werte wählen.".into(),
        (F::NotAllowed, Lang::En) => "Please choose one of the values offered.".into(),
        (F::WrongType, Lang::De) => "Diese Art von Eingabe passt hier nicht.".into(),
        (F::WrongType, Lang::En) => "This kind of value does not fit here.".into(),
        (F::Other, Lang::De) => "Die Eingabe ist ungültig.".into(),
        (F::Other, Lang::En) => "This value is invalid.".into(),
    }
}

/// Puts each problem at the control it concerns (a missing value at its own control),
/// the first per control; returns the problems no control shows.
pub fn place_problems(
    fields: &mut [Field],
    problems: Vec<ConfigProblem>,
    lang: Lang,
) -> Vec<ConfigProblem> {
    let mut rest = Vec::new();
    for p in problems {
        let prop = match (&p.fault, p.pointer.as_str()) {
            (ConfigFault::Required { property }, "/config") => Some(property.as_str()),
            _ => property_of(&p.pointer),
        };
        match prop.and_then(|prop| fields.iter_mut().find(|f| f.name == prop)) {
            Some(f) => {
                if f.error.is_none() {
                    f.error = Some(fault_text(&p.fault, lang));
                }
            }
            None => rest.push(p),
        }
    }
    rest
}

/// The property a JSON pointer of the API's error names (`/config/domain` → `domain`).
pub fn property_of(pointer: &str) -> Option<&str> {
    pointer
        .strip_prefix("/config/")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["domain"],
            "properties": {
                "domain": {"type": "string", "pattern": "^[a-z.]+$", "description": "Where it answers."},
                "users": {"type": "integer", "minimum": 1, "default": 50},
                "sso": {"type": "boolean"},
                "tier": {"enum": ["gold", "silver"]},
                "extensions": {"type": "array", "items": {"enum": ["a", "b"]}},
                "extra": {"type": "object"}
            }
        })
    }

    #[test]
    fn every_property_gets_a_control_with_its_default() {
        let f = fields(&schema(), &Value::Null);
        let by = |n: &str| f.iter().find(|x| x.name == n).unwrap().clone();
        assert!(by("domain").required && by("domain").kind == Kind::Text);
        assert_eq!(by("domain").hint.as_deref(), Some("Where it answers."));
        assert_eq!(by("users").value, "50");
        assert_eq!(by("users").min.as_deref(), Some("1"));
        assert!(by("sso").is_checkbox());
        assert_eq!(by("tier").options(), ["gold", "silver"]);
        assert_eq!(by("extensions").choices(), ["a", "b"]);
        assert!(by("extra").is_json());
        assert_eq!(by("domain").label, "Domain");
    }

    #[test]
    fn answers_become_typed_configuration_and_bad_ones_stay_text() {
        let a = |k: &str, v: &str| (format!("cfg.{k}"), v.to_string());
        let c = config(
            &schema(),
            &[
                a("domain", "x.de"),
                a("users", "12"),
                a("extensions", "a"),
                a("extensions", "b"),
                a("extra", "{\"k\": 1}"),
            ],
        );
        assert_eq!(
            c,
            json!({"domain": "x.de", "users": 12, "sso": false, "extensions": ["a", "b"], "extra": {"k": 1}})
        );
        let c = config(&schema(), &[a("users", "viele")]);
        assert_eq!(c["users"], "viele");
        assert!(c.get("domain").is_none());
        assert_eq!(property_of("/config/domain"), Some("domain"));
        assert_eq!(property_of("/config/extensions/0"), Some("extensions"));
        assert_eq!(property_of("/plan"), None);
    }
}
