//! A booking form generated from an offering's JSON Schema, and its answers turned back
//! into the configuration the API validates.
//!
//! Each property becomes one control: text (with the schema's pattern and length),
//! number (minimum, maximum), checkbox (boolean), a select (enum), a group of checkboxes
//! (array of enum). An object with properties becomes a group of controls (`fieldset`
//! with its title as the `legend`), an array of anything else a list of rows, one
//! control (or group) per row. Rows are added and removed by submit buttons ("Weitere
//! Zeile", "Zeile 2 entfernen") that show the form again with the change and book
//! nothing, so lists work without JavaScript. Only what the schema leaves open (an object
//! without properties) is a JSON text area. Labels are the schema's `title`, hints its
//! `description`; a raw key is shown only where the schema has no title.
//!
//! A control's name is `cfg.` and the path of its value (`cfg.sso.issuer`,
//! `cfg.wopi_hosts.0`), its id the same with dashes (`cfg-sso-issuer`). The portal never
//! validates on its own: the API's validation against the schema decides, and each of
//! its problems (a JSON pointer into the configuration) is shown at the control it names.

use askama::Template;
use serde_json::{Map, Value};
use verbund_domain::booking::{ConfigFault, ConfigProblem};

use crate::i18n::{Lang, Texts};

/// What kind of control a property gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Text,
    Integer,
    Number,
    Checkbox,
    Select(Vec<String>),
    Choices(Vec<String>),
    /// An object's properties, grouped.
    Group(Vec<Field>),
    /// An array's rows, each the control of its `items` schema.
    List(Vec<Field>),
    Json,
}

/// One control of the form, with what the person entered (or the schema's default).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The path of the value (`domain`, `sso.issuer`, `wopi_hosts.0`); the control's
    /// name is `cfg.<name>`.
    pub name: String,
    pub label: String,
    pub hint: Option<String>,
    pub kind: Kind,
    pub required: bool,
    /// A row of a list (its label is the row's number, it is never marked optional).
    pub row: bool,
    pub pattern: Option<String>,
    pub min: Option<String>,
    pub max: Option<String>,
    /// The entered text (text, numbers, JSON), or the chosen values (checkbox groups).
    pub value: String,
    pub chosen: Vec<String>,
    pub error: Option<String>,
    /// The name of the row's remove button ("Zeile 2 entfernen"), for rows.
    pub remove_label: String,
    /// The control gets the focus when the page opens (the row just added).
    pub focus: bool,
}

impl Field {
    pub fn id(&self) -> String {
        format!("cfg-{}", self.name.replace('.', "-"))
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

    /// Whether the label says "(optional)".
    pub fn marked_optional(&self) -> bool {
        !self.required && !self.row
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

    pub fn is_group(&self) -> bool {
        matches!(self.kind, Kind::Group(_))
    }

    pub fn is_list(&self) -> bool {
        matches!(self.kind, Kind::List(_))
    }

    /// A group's controls.
    pub fn members(&self) -> &[Field] {
        match &self.kind {
            Kind::Group(f) => f,
            _ => &[],
        }
    }

    /// A list's rows.
    pub fn rows(&self) -> &[Field] {
        match &self.kind {
            Kind::List(f) => f,
            _ => &[],
        }
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

    fn find_mut(&mut self, name: &str) -> Option<&mut Field> {
        if self.name == name {
            return Some(self);
        }
        if !name.starts_with(&format!("{}.", self.name)) {
            return None;
        }
        match &mut self.kind {
            Kind::Group(inner) | Kind::List(inner) => {
                inner.iter_mut().find_map(|f| f.find_mut(name))
            }
            _ => None,
        }
    }
}

/// One control as HTML; a group's members and a list's rows are rendered by the same
/// template (askama includes cannot recurse).
#[derive(Template)]
#[template(path = "field.html")]
pub struct FieldHtml<'a> {
    pub f: &'a Field,
    pub t: &'static Texts,
    /// The `lang` of the vendor's hints, when they are not in the page's language.
    pub text_lang: Option<String>,
}

impl FieldHtml<'_> {
    /// The HTML of a member or row of this control.
    fn member(&self, f: &Field) -> String {
        FieldHtml {
            f,
            t: self.t,
            text_lang: self.text_lang.clone(),
        }
        .render()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, control = %f.name, "a form control did not render");
            String::new()
        })
    }
}

/// A problem of the form as its summary at the top lists it: the control's id, its
/// label (with its group's or list's before it), what is wrong.
pub struct Fault {
    pub id: String,
    pub label: String,
    pub text: String,
}

/// Every control's problem, in the form's order, at any depth.
pub fn faults(fields: &[Field]) -> Vec<Fault> {
    fn walk(f: &Field, trail: &str, out: &mut Vec<Fault>) {
        let label = if trail.is_empty() {
            f.label.clone()
        } else {
            format!("{trail} – {}", f.label)
        };
        if let Some(e) = &f.error {
            out.push(Fault {
                id: f.id(),
                label: label.clone(),
                text: e.clone(),
            });
        }
        for inner in f.members().iter().chain(f.rows()) {
            walk(inner, &label, out);
        }
    }
    let mut out = Vec::new();
    for f in fields {
        walk(f, "", &mut out);
    }
    out
}

/// The control named `name` among `fields`, at any depth.
pub fn find_mut<'a>(fields: &'a mut [Field], name: &str) -> Option<&'a mut Field> {
    fields.iter_mut().find_map(|f| f.find_mut(name))
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

/// The shape of a property's schema, which decides its control and how its answers are
/// read back.
enum Shape<'a> {
    Select(Vec<String>),
    Choices(Vec<String>),
    Group(&'a Map<String, Value>),
    List(&'a Value),
    Text,
    Integer,
    Number,
    Checkbox,
    Json,
}

fn shape(p: &Value) -> Shape<'_> {
    if let Some(options) = enum_of(p) {
        return Shape::Select(options);
    }
    match p.get("type").and_then(Value::as_str).unwrap_or("") {
        "string" => Shape::Text,
        "integer" => Shape::Integer,
        "number" => Shape::Number,
        "boolean" => Shape::Checkbox,
        "object" => match p.get("properties").and_then(Value::as_object) {
            Some(props) => Shape::Group(props),
            None => Shape::Json,
        },
        "array" => match p.get("items") {
            Some(items) => match enum_of(items) {
                Some(options) => Shape::Choices(options),
                None if items.get("type").is_some() => Shape::List(items),
                None => Shape::Json,
            },
            None => Shape::Json,
        },
        _ => Shape::Json,
    }
}

fn required_of(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The form for `schema`, pre-filled from `config` (the person's last answers) or, for
/// an empty `config`, the schema's defaults.
pub fn fields(schema: &Value, config: &Value, lang: Lang) -> Vec<Field> {
    members(schema, "", Some(config), lang)
}

/// The controls of an object schema's properties, their names under `prefix`.
fn members(schema: &Value, prefix: &str, value: Option<&Value>, lang: Lang) -> Vec<Field> {
    let required = required_of(schema);
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(key, p)| {
            let given = value.and_then(|v| v.get(key)).or_else(|| p.get("default"));
            let mut f = field(p, format!("{prefix}{key}"), given, lang);
            f.required = required.contains(&key.as_str());
            f.label = p
                .get("title")
                .and_then(Value::as_str)
                .map_or_else(|| humanize(key), str::to_string);
            f
        })
        .collect()
}

/// The control of one value: `p` its schema, `given` what it holds.
fn field(p: &Value, name: String, given: Option<&Value>, lang: Lang) -> Field {
    let mut value = String::new();
    let mut chosen = Vec::new();
    let kind = match shape(p) {
        Shape::Select(o) => Kind::Select(o),
        Shape::Choices(o) => {
            if let Some(Value::Array(a)) = given {
                chosen = a.iter().map(text_of).collect();
            }
            Kind::Choices(o)
        }
        Shape::Group(_) => Kind::Group(members(p, &format!("{name}."), given, lang)),
        Shape::List(items) => Kind::List(rows(p, items, &name, given, lang)),
        Shape::Text => Kind::Text,
        Shape::Integer => Kind::Integer,
        Shape::Number => Kind::Number,
        Shape::Checkbox => Kind::Checkbox,
        Shape::Json => {
            value = given
                .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
                .unwrap_or_default();
            Kind::Json
        }
    };
    if matches!(
        kind,
        Kind::Text | Kind::Integer | Kind::Number | Kind::Checkbox | Kind::Select(_)
    ) {
        value = given.map(text_of).unwrap_or_default();
    }
    let num = |k: &str| p.get(k).map(text_of);
    Field {
        label: String::new(),
        hint: p
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
        required: false,
        row: false,
        pattern: p.get("pattern").and_then(Value::as_str).map(str::to_string),
        min: num("minimum"),
        max: num("maximum"),
        kind,
        value,
        chosen,
        error: None,
        remove_label: String::new(),
        focus: false,
        name,
    }
}

/// A list's rows: one per given item (an empty one stands for a row left blank), at
/// least `minItems` and at least one, so that there is always a row to fill in.
fn rows(list: &Value, items: &Value, name: &str, given: Option<&Value>, lang: Lang) -> Vec<Field> {
    let mut values: Vec<Option<&Value>> = match given {
        Some(Value::Array(a)) => a.iter().map(Some).collect(),
        _ => Vec::new(),
    };
    let least = list
        .get("minItems")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1);
    while (values.len() as u64) < least {
        values.push(None);
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let given = v.filter(|v| !v.is_null()).or_else(|| items.get("default"));
            let mut f = field(items, format!("{name}.{i}"), given, lang);
            f.row = true;
            f.label = row_label(i + 1, lang);
            f.remove_label = remove_label(i + 1, lang);
            f
        })
        .collect()
}

fn row_label(n: usize, lang: Lang) -> String {
    match lang {
        Lang::De => format!("Zeile {n}"),
        Lang::En => format!("Row {n}"),
    }
}

fn remove_label(n: usize, lang: Lang) -> String {
    match lang {
        Lang::De => format!("Zeile {n} entfernen"),
        Lang::En => format!("Remove row {n}"),
    }
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

/// The form's answers, looked up by control name.
struct Answers<'a>(&'a [(String, String)]);

impl Answers<'_> {
    fn all(&self, name: &str) -> Vec<&str> {
        let key = format!("cfg.{name}");
        self.0
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// How many rows the list `name` had: what its hidden count says, or more if more
    /// rows were posted (a script may add rows).
    fn rows(&self, name: &str) -> usize {
        let counted = self
            .0
            .iter()
            .find(|(k, _)| *k == format!("rows.{name}"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let prefix = format!("cfg.{name}.");
        let posted = self
            .0
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
            .map(|i| i + 1)
            .max()
            .unwrap_or(0);
        // A form cannot have more rows than answers; a forged count cannot make the
        // server build a huge configuration.
        counted.max(posted).min(self.0.len())
    }
}

/// A control's answer as posted, trimmed; empty when the form did not send it.
pub fn answer(answers: &[(String, String)], name: &str) -> String {
    answers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// The configuration the form's answers describe. Values that do not parse as their
/// type are passed on as text, so that the API's schema validation names them. Blank
/// rows are left out; an optional group whose every value is blank or its default is
/// left out (nobody asked for it: `sso` without an issuer), a required one is kept so
/// that validation names what it lacks.
pub fn config(schema: &Value, answers: &[(String, String)]) -> Value {
    read_members(schema, "", &Answers(answers), false)
}

/// The form's answers as they stand, blank rows (as `null`) and untouched groups
/// included: what the form shows again after a row was added or removed.
pub fn draft(schema: &Value, answers: &[(String, String)]) -> Value {
    read_members(schema, "", &Answers(answers), true)
}

fn read_members(schema: &Value, prefix: &str, answers: &Answers, draft: bool) -> Value {
    let mut out = Map::new();
    let required = required_of(schema);
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (key, p) in props {
            let name = format!("{prefix}{key}");
            if let Some(v) = read(p, &name, required.contains(&key.as_str()), answers, draft) {
                out.insert(key.clone(), v);
            }
        }
    }
    Value::Object(out)
}

/// Whether `v` is only what the schema `p` would assume anyway.
fn is_untouched(p: &Value, v: &Value) -> bool {
    match p.get("default") {
        Some(d) => d == v,
        None => matches!(v, Value::Bool(false)) || v.as_array().is_some_and(Vec::is_empty),
    }
}

/// The value of the control `name` (schema `p`), or none when it is blank.
fn read(p: &Value, name: &str, required: bool, answers: &Answers, draft: bool) -> Option<Value> {
    let given = answers.all(name);
    let first = given.first().map(|s| s.trim()).unwrap_or("");
    match shape(p) {
        Shape::Group(props) => {
            let obj = read_members(p, &format!("{name}."), answers, draft);
            let touched = obj.as_object().is_some_and(|o| {
                o.iter()
                    .any(|(k, v)| props.get(k).is_none_or(|s| !is_untouched(s, v)))
            });
            (required || touched || draft).then_some(obj)
        }
        Shape::List(items) => {
            let rows: Vec<Value> = (0..answers.rows(name))
                .filter_map(
                    |i| match read(items, &format!("{name}.{i}"), false, answers, draft) {
                        Some(v) => Some(v),
                        None if draft => Some(Value::Null),
                        None => None,
                    },
                )
                .collect();
            (required || draft || !rows.is_empty()).then_some(Value::Array(rows))
        }
        Shape::Checkbox => Some(Value::Bool(!given.is_empty())),
        Shape::Choices(_) => Some(Value::Array(
            given
                .iter()
                .map(|v| Value::String((*v).to_string()))
                .collect(),
        )),
        _ if first.is_empty() => None,
        Shape::Integer => Some(
            first
                .parse::<i64>()
                .map_or_else(|_| Value::String(first.into()), Value::from),
        ),
        Shape::Number => Some(
            first
                .parse::<f64>()
                .ok()
                .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                .unwrap_or_else(|| Value::String(first.into())),
        ),
        Shape::Json => {
            Some(serde_json::from_str(first).unwrap_or_else(|_| Value::String(first.into())))
        }
        Shape::Text | Shape::Select(_) => Some(Value::String(first.into())),
    }
}

/// A change to a list's rows asked for by one of the form's row buttons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowEdit {
    /// "Weitere Zeile" of the list at this path.
    Add(String),
    /// "Zeile n entfernen": the row at this path (`wopi_hosts.1`).
    Remove(String),
}

impl RowEdit {
    /// The row button the form was submitted with, if any (then it books nothing).
    pub fn asked(answers: &[(String, String)]) -> Option<RowEdit> {
        answers.iter().find_map(|(k, v)| match k.as_str() {
            "add" => Some(RowEdit::Add(v.clone())),
            "remove" => Some(RowEdit::Remove(v.clone())),
            _ => None,
        })
    }
}

/// Applies a row edit to a draft (`draft`); returns the path of the row added, which
/// the form focuses. A path that names no list of the draft changes nothing.
pub fn edit_rows(draft: &mut Value, edit: &RowEdit) -> Option<String> {
    match edit {
        RowEdit::Add(list) => {
            let rows = array_at(draft, list)?;
            rows.push(Value::Null);
            Some(format!("{list}.{}", rows.len() - 1))
        }
        RowEdit::Remove(row) => {
            let (list, index) = row.rsplit_once('.')?;
            let index: usize = index.parse().ok()?;
            let rows = array_at(draft, list)?;
            if index < rows.len() {
                rows.remove(index);
            }
            None
        }
    }
}

fn array_at<'a>(value: &'a mut Value, path: &str) -> Option<&'a mut Vec<Value>> {
    let mut at = value;
    for key in path.split('.') {
        at = match at {
            Value::Object(o) => o.get_mut(key)?,
            Value::Array(a) => a.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    at.as_array_mut()
}

/// A stored configuration as a reader sees it: each value with its label (the schema's
/// titles, a group's before its member's, a list's entries numbered), in the schema's
/// words; only what the configuration holds (nothing filled in from defaults).
pub fn summary(schema: &Value, config: &Value, lang: Lang) -> Vec<(String, String)> {
    fn join(trail: &str, label: &str) -> String {
        if trail.is_empty() {
            label.to_string()
        } else {
            format!("{trail} – {label}")
        }
    }
    fn walk(
        schema: Option<&Value>,
        value: &Value,
        trail: &str,
        lang: Lang,
        out: &mut Vec<(String, String)>,
    ) {
        match value {
            Value::Object(o) => {
                for (k, v) in o {
                    let p = schema.and_then(|s| s.get("properties")?.get(k));
                    let label = p
                        .and_then(|p| p.get("title"))
                        .and_then(Value::as_str)
                        .map_or_else(|| humanize(k), str::to_string);
                    walk(p, v, &join(trail, &label), lang, out);
                }
            }
            Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => {
                let items = schema.and_then(|s| s.get("items"));
                for (i, v) in a.iter().enumerate() {
                    walk(items, v, &join(trail, &row_label(i + 1, lang)), lang, out);
                }
            }
            Value::Array(a) if a.is_empty() => out.push((trail.to_string(), "–".into())),
            Value::Array(a) => out.push((
                trail.to_string(),
                a.iter().map(text_of).collect::<Vec<_>>().join(", "),
            )),
            Value::Bool(b) => out.push((
                trail.to_string(),
                match (b, lang) {
                    (true, Lang::De) => "ja",
                    (false, Lang::De) => "nein",
                    (true, Lang::En) => "yes",
                    (false, Lang::En) => "no",
                }
                .into(),
            )),
            other => out.push((trail.to_string(), text_of(other))),
        }
    }
    let mut out = Vec::new();
    walk(Some(schema), config, "", lang, &mut out);
    out
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
        (F::TooFew { min: 1 }, Lang::De) => "Bitte mindestens einen Eintrag angeben.".into(),
        (F::TooFew { min: 1 }, Lang::En) => "Please enter at least one entry.".into(),
        (F::TooFew { min }, Lang::De) => format!("Bitte mindestens {min} Einträge angeben."),
        (F::TooFew { min }, Lang::En) => format!("Please enter at least {min} entries."),
        (F::NotAllowed, Lang::De) => "Bitte einen der angebotenen Werte wählen.".into(),
        (F::NotAllowed, Lang::En) => "Please choose one of the values offered.".into(),
        (F::WrongType, Lang::De) => "Diese Art von Eingabe passt hier nicht.".into(),
        (F::WrongType, Lang::En) => "This kind of value does not fit here.".into(),
        (F::Other, Lang::De) => "Die Eingabe ist ungültig.".into(),
        (F::Other, Lang::En) => "This value is invalid.".into(),
    }
}

/// Puts each problem at the control it concerns (a missing value at its own control, a
/// fault inside a group or a row at that control, else at the nearest control that
/// holds it), the first per control; returns the problems no control shows.
pub fn place_problems(
    fields: &mut [Field],
    problems: Vec<ConfigProblem>,
    lang: Lang,
) -> Vec<ConfigProblem> {
    let mut rest = Vec::new();
    for p in problems {
        let mut path = path_of(&p.pointer);
        if let ConfigFault::Required { property } = &p.fault {
            path.push(property.clone());
        }
        let mut shown = false;
        while !path.is_empty() {
            if let Some(f) = find_mut(fields, &path.join(".")) {
                if f.error.is_none() {
                    f.error = Some(fault_text(&p.fault, lang));
                }
                shown = true;
                break;
            }
            path.pop();
        }
        if !shown {
            rest.push(p);
        }
    }
    rest
}

/// The path of the value a JSON pointer of the API's error names (`/config/sso/issuer`
/// → `sso`, `issuer`); empty for the configuration itself or anything else.
fn path_of(pointer: &str) -> Vec<String> {
    match pointer.strip_prefix("/config/") {
        Some(rest) => rest
            .split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["domain", "hosts", "registry"],
            "properties": {
                "domain": {"type": "string", "pattern": "^[a-z.]+$", "description": "Where it answers."},
                "users": {"type": "integer", "minimum": 1, "default": 50},
                "sso": {"type": "boolean"},
                "tier": {"enum": ["gold", "silver"]},
                "extensions": {"type": "array", "items": {"enum": ["a", "b"]}},
                "extra": {"type": "object"},
                "hosts": {"type": "array", "title": "Erlaubte Hosts", "minItems": 1,
                          "items": {"type": "string"}},
                "registry": {"type": "object", "title": "Melderegister", "required": ["url"],
                             "properties": {
                                 "url": {"type": "string", "title": "Adresse"},
                                 "procedure": {"enum": ["ewo", "meso"]}
                             }},
                "login": {"type": "object", "required": ["issuer"], "properties": {
                    "issuer": {"type": "string"},
                    "client": {"type": "string", "default": "app"},
                    "strict": {"type": "boolean", "default": true}
                }}
            }
        })
    }

    fn a(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn every_property_gets_a_control_with_its_default() {
        let f = fields(&schema(), &Value::Null, Lang::De);
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
    fn objects_are_groups_and_arrays_are_rows_labelled_by_their_titles() {
        let f = fields(&schema(), &Value::Null, Lang::De);
        let by = |n: &str| f.iter().find(|x| x.name == n).unwrap().clone();
        let registry = by("registry");
        assert!(registry.is_group() && registry.required);
        assert_eq!(registry.label, "Melderegister");
        let member = |n: &str| {
            registry
                .members()
                .iter()
                .find(|m| m.name == n)
                .unwrap()
                .clone()
        };
        let url = member("registry.url");
        assert_eq!(
            (url.name.as_str(), url.label.as_str()),
            ("registry.url", "Adresse")
        );
        assert!(url.required);
        assert_eq!(url.id(), "cfg-registry-url");
        assert_eq!(member("registry.procedure").options(), ["ewo", "meso"]);
        let login = by("login");
        let client = login
            .members()
            .iter()
            .find(|m| m.name == "login.client")
            .unwrap();
        assert_eq!(client.value, "app", "a member's default");
        let hosts = by("hosts");
        assert_eq!(hosts.label, "Erlaubte Hosts");
        assert_eq!(hosts.rows().len(), 1, "one blank row to fill in");
        let row = &hosts.rows()[0];
        assert_eq!(
            (row.name.as_str(), row.label.as_str()),
            ("hosts.0", "Zeile 1")
        );
        assert!(row.row && !row.marked_optional() && row.kind == Kind::Text);
        assert_eq!(row.remove_label, "Zeile 1 entfernen");
        // Rows come from the configuration.
        let f = fields(&schema(), &json!({"hosts": ["a.de", "b.de"]}), Lang::En);
        let hosts = f.iter().find(|x| x.name == "hosts").unwrap();
        let values: Vec<&str> = hosts.rows().iter().map(|r| r.value.as_str()).collect();
        assert_eq!(values, ["a.de", "b.de"]);
        assert_eq!(hosts.rows()[1].label, "Row 2");
    }

    #[test]
    fn answers_become_typed_configuration_and_bad_ones_stay_text() {
        let c = config(
            &schema(),
            &[
                a("cfg.domain", "x.de"),
                a("cfg.users", "12"),
                a("cfg.extensions", "a"),
                a("cfg.extensions", "b"),
                a("cfg.extra", "{\"k\": 1}"),
                a("rows.hosts", "3"),
                a("cfg.hosts.0", "a.de"),
                a("cfg.hosts.1", " "),
                a("cfg.hosts.2", "c.de"),
                a("cfg.registry.url", "https://r"),
                a("cfg.registry.procedure", "ewo"),
                a("cfg.login.client", "app"),
                a("cfg.login.strict", "true"),
            ],
        );
        assert_eq!(
            c,
            json!({"domain": "x.de", "users": 12, "sso": false, "extensions": ["a", "b"],
                   "extra": {"k": 1}, "hosts": ["a.de", "c.de"],
                   "registry": {"url": "https://r", "procedure": "ewo"}}),
            "blank rows and an untouched optional group are left out"
        );
        let c = config(
            &schema(),
            &[a("cfg.users", "viele"), a("cfg.login.client", "x")],
        );
        assert_eq!(c["users"], "viele");
        assert!(c.get("domain").is_none());
        assert_eq!(c["hosts"], json!([]), "a required list is kept, empty");
        assert_eq!(c["registry"], json!({}), "a required group is kept, empty");
        assert_eq!(
            c["login"],
            json!({"client": "x", "strict": false}),
            "a changed optional group is kept, so that its missing issuer is named"
        );
        assert_eq!(path_of("/config/domain"), ["domain"]);
        assert_eq!(path_of("/config/extensions/0"), ["extensions", "0"]);
        assert!(path_of("/plan").is_empty());
    }

    #[test]
    fn a_configuration_reads_with_its_titles() {
        let c = json!({"hosts": ["a.de", "b.de"], "registry": {"url": "https://r"}, "sso": true, "tier": "gold"});
        assert_eq!(
            summary(&schema(), &c, Lang::De),
            [
                ("Erlaubte Hosts".to_string(), "a.de, b.de".to_string()),
                ("Melderegister – Adresse".into(), "https://r".into()),
                ("Sso".into(), "ja".into()),
                ("Tier".into(), "gold".into()),
            ]
        );
    }

    #[test]
    fn rows_are_added_and_removed_without_losing_what_was_entered() {
        let answers = [
            a("rows.hosts", "2"),
            a("cfg.hosts.0", ""),
            a("cfg.hosts.1", "b.de"),
            a("cfg.domain", "x.de"),
        ];
        assert_eq!(RowEdit::asked(&answers), None);
        let mut d = draft(&schema(), &answers);
        assert_eq!(d["hosts"], json!([null, "b.de"]));
        let added = edit_rows(&mut d, &RowEdit::Add("hosts".into()));
        assert_eq!(added.as_deref(), Some("hosts.2"));
        let f = fields(&schema(), &d, Lang::De);
        let hosts = f.iter().find(|x| x.name == "hosts").unwrap();
        let values: Vec<&str> = hosts.rows().iter().map(|r| r.value.as_str()).collect();
        assert_eq!(values, ["", "b.de", ""]);
        assert_eq!(f.iter().find(|x| x.name == "domain").unwrap().value, "x.de");
        edit_rows(&mut d, &RowEdit::Remove("hosts.0".into()));
        assert_eq!(d["hosts"], json!(["b.de", null]));
        assert_eq!(edit_rows(&mut d, &RowEdit::Add("nothing".into())), None);
        assert_eq!(
            RowEdit::asked(&[a("add", "hosts")]),
            Some(RowEdit::Add("hosts".into()))
        );
        // A forged row count builds no more rows than were posted.
        let d = draft(&schema(), &[a("rows.hosts", "99999999")]);
        assert_eq!(d["hosts"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn problems_are_shown_at_the_control_inside_groups_and_rows() {
        let s = schema();
        let c = json!({"hosts": ["a.de", 5], "registry": {}, "login": {"client": "x"}});
        let mut f = fields(&s, &c, Lang::De);
        let problems = verbund_domain::booking::config_problems(&s, &c);
        let rest = place_problems(&mut f, problems, Lang::De);
        assert!(rest.is_empty(), "{rest:?}");
        let mut error = |name: &str| {
            find_mut(&mut f, name)
                .and_then(|x| x.error.clone())
                .unwrap_or_default()
        };
        assert_eq!(error("domain"), "Bitte ausfüllen.");
        assert_eq!(error("registry.url"), "Bitte ausfüllen.");
        assert_eq!(error("login.issuer"), "Bitte ausfüllen.");
        assert_eq!(error("hosts.1"), "Diese Art von Eingabe passt hier nicht.");
        assert_eq!(error("hosts.0"), "");
        let mut f = fields(&s, &json!({"hosts": []}), Lang::De);
        place_problems(
            &mut f,
            verbund_domain::booking::config_problems(&s, &json!({"hosts": []})),
            Lang::De,
        );
        assert_eq!(
            find_mut(&mut f, "hosts")
                .and_then(|x| x.error.clone())
                .as_deref(),
            Some("Bitte mindestens einen Eintrag angeben.")
        );
    }
}
