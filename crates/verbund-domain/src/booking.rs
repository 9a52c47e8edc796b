//! Bookings: an organisation × offering × plan × configuration × update channel, and
//! the lifecycle it goes through.
//!
//! The lifecycle is an explicit state machine; every transition is named by an event so
//! that the audit trail says what happened, and impossible transitions are refused.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::catalog::OfferingSpec;
use crate::directory::Environment;
use crate::error::{Invalid, Result};

/// Where a booking is in its life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum BookingState {
    Requested,
    AwaitingApproval,
    Placed,
    Provisioning,
    Active,
    Updating,
    Degraded,
    /// The booking's end came: its data is being exported; nothing is torn down before
    /// the export is verified (see [`crate::ending`]).
    Exporting,
    Cancelling,
    Retained,
    Deleted,
    Rejected,
}

impl BookingState {
    pub const ALL: [BookingState; 12] = [
        BookingState::Requested,
        BookingState::AwaitingApproval,
        BookingState::Placed,
        BookingState::Provisioning,
        BookingState::Active,
        BookingState::Updating,
        BookingState::Degraded,
        BookingState::Exporting,
        BookingState::Cancelling,
        BookingState::Retained,
        BookingState::Deleted,
        BookingState::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BookingState::Requested => "requested",
            BookingState::AwaitingApproval => "awaiting-approval",
            BookingState::Placed => "placed",
            BookingState::Provisioning => "provisioning",
            BookingState::Active => "active",
            BookingState::Updating => "updating",
            BookingState::Degraded => "degraded",
            BookingState::Exporting => "exporting",
            BookingState::Cancelling => "cancelling",
            BookingState::Retained => "retained",
            BookingState::Deleted => "deleted",
            BookingState::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<BookingState> {
        BookingState::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// Whether the booking holds a site and its capacity.
    pub fn holds_capacity(self) -> bool {
        matches!(
            self,
            BookingState::Placed
                | BookingState::Provisioning
                | BookingState::Active
                | BookingState::Updating
                | BookingState::Degraded
                | BookingState::Exporting
                | BookingState::Cancelling
        )
    }

    /// Whether the booking is running or about to run on its site.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            BookingState::Placed
                | BookingState::Provisioning
                | BookingState::Active
                | BookingState::Updating
                | BookingState::Degraded
        )
    }

    /// Whether the booking's folder belongs in its site's desired state: from placement
    /// until it is retained (a cancelling booking keeps running until the sweep retains
    /// it, then its folder is removed). The same states that hold capacity.
    pub fn is_delivered(self) -> bool {
        self.holds_capacity()
    }

    pub fn is_final(self) -> bool {
        matches!(self, BookingState::Deleted | BookingState::Rejected)
    }
}

impl fmt::Display for BookingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BookingEvent {
    /// The offering or organisation requires approval.
    RequireApproval,
    /// A site was found (after approval, where needed).
    Place,
    /// Refused: no allowed site, or an approver said no.
    Reject,
    /// The desired state was written for the site.
    Provision,
    /// The site reports the desired version ready.
    BecomeReady,
    /// A new version is being rolled out to the booking.
    StartUpdate,
    /// The site reports the booking unhealthy.
    Degrade,
    /// The booking's end came (its last day passed, or the organisation ended it early):
    /// its data is exported.
    End,
    /// The site reported the export done and its checksums agree: it may be torn down.
    ExportVerified,
    /// The organisation cancels.
    Cancel,
    /// Cancellation done: the workload is gone, the data kept for the retention period.
    Retain,
    /// The retention period ended; the data is deleted.
    Purge,
}

impl BookingEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingEvent::RequireApproval => "require-approval",
            BookingEvent::Place => "place",
            BookingEvent::Reject => "reject",
            BookingEvent::Provision => "provision",
            BookingEvent::BecomeReady => "become-ready",
            BookingEvent::StartUpdate => "start-update",
            BookingEvent::Degrade => "degrade",
            BookingEvent::End => "end",
            BookingEvent::ExportVerified => "export-verified",
            BookingEvent::Cancel => "cancel",
            BookingEvent::Retain => "retain",
            BookingEvent::Purge => "purge",
        }
    }
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a booking in state `{from}` cannot `{}`", event.as_str())]
pub struct InvalidTransition {
    pub from: BookingState,
    pub event: BookingEvent,
}

/// The lifecycle: the state after `event`, or why it cannot happen.
pub fn transition(
    from: BookingState,
    event: BookingEvent,
) -> Result<BookingState, InvalidTransition> {
    use BookingEvent as E;
    use BookingState as S;
    let to = match (from, event) {
        (S::Requested, E::RequireApproval) => S::AwaitingApproval,
        (S::Requested | S::AwaitingApproval, E::Place) => S::Placed,
        (S::Requested | S::AwaitingApproval, E::Reject) => S::Rejected,
        (S::Placed, E::Provision) => S::Provisioning,
        (S::Provisioning | S::Updating | S::Degraded, E::BecomeReady) => S::Active,
        (S::Active | S::Degraded | S::Provisioning, E::StartUpdate) => S::Updating,
        (S::Provisioning | S::Active | S::Updating, E::Degrade) => S::Degraded,
        (S::Placed | S::Provisioning | S::Active | S::Updating | S::Degraded, E::End) => {
            S::Exporting
        }
        (S::Exporting, E::ExportVerified) => S::Cancelling,
        (
            S::Requested
            | S::AwaitingApproval
            | S::Placed
            | S::Provisioning
            | S::Active
            | S::Updating
            | S::Degraded
            | S::Exporting,
            E::Cancel,
        ) => S::Cancelling,
        (S::Cancelling, E::Retain) => S::Retained,
        (S::Retained, E::Purge) => S::Deleted,
        _ => return Err(InvalidTransition { from, event }),
    };
    Ok(to)
}

/// When a retained booking's data is deleted: `retention_days` (the offering's) after it
/// was retained. The lifecycle sweep purges then, and the portal names the day before a
/// cancellation.
pub fn retention_ends(retained_since: DateTime<Utc>, retention_days: u32) -> DateTime<Utc> {
    retained_since + chrono::Duration::days(i64::from(retention_days))
}

/// A weekly maintenance window in local German time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceWindow {
    /// Days of the week, 0 = Monday.
    pub days: Vec<u8>,
    /// Minutes after midnight.
    pub start: u16,
    pub end: u16,
}

/// Which versions a booking receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateChannel {
    /// Every new version, as soon as its rollout reaches the booking.
    Stable,
    /// Exactly this version; rollouts leave the booking alone.
    Pinned(semver::Version),
    /// Every new version, but only inside the window.
    Window(MaintenanceWindow),
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// An update channel's form, as a regular expression: `stable`, `pinned:` and a version
/// ([`crate::catalog::version_syntax`]), or `window:`, days and a time span of `HH:MM`.
/// A booking's channel must match it; that a window's times exist and its start lies
/// before its end is a rule of meaning ([`UpdateChannel::from_str`] decides it).
pub static CHANNEL: crate::name::Pattern = crate::name::Pattern::new(|| {
    let day = format!("({})", DAYS.join("|"));
    let time = "([01][0-9]|2[0-4]):[0-5][0-9]";
    format!(
        "^(stable|pinned:{}|window:{day}(,{day})* {time}-{time})$",
        crate::catalog::version_syntax()
    )
});

/// The JSON Schema of an update channel.
pub fn channel_schema() -> utoipa::openapi::schema::Object {
    CHANNEL.schema()
}

/// Checks a new update channel: its form ([`CHANNEL`]), then its meaning.
pub fn check_channel(field: &str, channel: &str) -> Result<UpdateChannel> {
    if !CHANNEL.is_match(channel) {
        return Err(Invalid::new(
            field,
            format!(
                "`{channel}` is not an update channel (`stable`, `pinned:<version>` or \
                 `window:<days> <HH:MM>-<HH:MM>`, e.g. `window:sat,sun 02:00-05:00`)"
            ),
        ));
    }
    channel
        .parse()
        .map_err(|e: String| Invalid::meaning(field, e))
}

fn parse_hm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

impl FromStr for UpdateChannel {
    type Err = String;

    /// `stable`, `pinned:1.2.3`, or `window:sat,sun 02:00-05:00`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "stable" {
            return Ok(UpdateChannel::Stable);
        }
        if let Some(v) = s.strip_prefix("pinned:") {
            return semver::Version::parse(v)
                .map(UpdateChannel::Pinned)
                .map_err(|e| format!("`{v}` is not a semantic version: {e}"));
        }
        if let Some(w) = s.strip_prefix("window:") {
            let bad =
                || format!("`{s}` is not a maintenance window (e.g. `window:sat,sun 02:00-05:00`)");
            let (days, times) = w.trim().split_once(' ').ok_or_else(bad)?;
            let days = days
                .split(',')
                .map(|d| DAYS.iter().position(|x| *x == d).map(|p| p as u8))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(bad)?;
            let (a, b) = times.split_once('-').ok_or_else(bad)?;
            let (start, end) = (parse_hm(a).ok_or_else(bad)?, parse_hm(b).ok_or_else(bad)?);
            if start >= end || days.is_empty() {
                return Err(bad());
            }
            return Ok(UpdateChannel::Window(MaintenanceWindow {
                days,
                start,
                end,
            }));
        }
        Err(format!(
            "`{s}` is not an update channel (`stable`, `pinned:<version>` or `window:<days> <from>-<to>`)"
        ))
    }
}

impl fmt::Display for UpdateChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateChannel::Stable => f.write_str("stable"),
            UpdateChannel::Pinned(v) => write!(f, "pinned:{v}"),
            UpdateChannel::Window(w) => {
                let day = |d: &u8| DAYS.get(usize::from(*d) % DAYS.len()).copied();
                let days: Vec<&str> = w.days.iter().filter_map(day).collect();
                write!(
                    f,
                    "window:{} {:02}:{:02}-{:02}:{:02}",
                    days.join(","),
                    w.start / 60,
                    w.start % 60,
                    w.end / 60,
                    w.end % 60
                )
            }
        }
    }
}

/// What an organisation submits to book an offering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingSpec {
    /// Id of the booking organisation.
    pub organisation: String,
    /// Name of the offering.
    pub offering: String,
    /// Name of one of the offering's plans.
    pub plan: String,
    /// Tenant configuration, valid against the offering's JSON Schema. Values the
    /// schema declares secret (`writeOnly: true` or `format: password`) are write-only:
    /// they are kept apart, never returned (the booking lists their pointers in
    /// `secrets_set`), and delivered only sealed for the booking's site.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub config: Value,
    /// `stable` (default), `pinned:<version>` or `window:<days> <from>-<to>`.
    #[serde(default = "stable")]
    #[schema(schema_with = channel_schema)]
    pub channel: String,
    /// Capacity windows: German local dates with the plan that holds between them, e.g.
    /// 1.3.–31.5. on plan `l` (see [`crate::capacity`]). Placement reserves each on the
    /// chosen site; a window no allowed site can hold refuses the booking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 12)]
    pub windows: Vec<crate::capacity::WindowSpec>,
    /// Makes the booking temporary: its last day, and where its data is exported before
    /// it is torn down (see [`crate::ending`]). Needs an offering with a data export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending: Option<crate::ending::EndingSpec>,
    /// How the booking gets some of the offering's dependencies, by dependency (offering
    /// name): bound to a running booking of the organisation, or created with it with a
    /// configuration of its own. Those not named: the organisation's running booking on
    /// the site placement chooses, or a new one with an empty configuration.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = dependency_choices_schema)]
    pub dependencies: BTreeMap<String, DependencyChoice>,
}

/// How a booking gets one of its offering's dependencies: `booking` binds the
/// organisation's running booking of it (placement then puts the booking on that
/// booking's site); `config` (with an optional `plan`) creates one with the booking, on
/// the same site, configured so. Exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DependencyChoice {
    /// Id of the organisation's running booking of the dependency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking: Option<String>,
    /// Plan of the dependency created with the booking (default: the one the offering
    /// names for it, else its smallest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = optional_plan_schema)]
    pub plan: Option<String>,
    /// Configuration of the dependency created with the booking, valid against the
    /// dependency offering's schema (its declared secrets kept apart, as a booking's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
}

fn optional_plan_schema() -> utoipa::openapi::schema::Object {
    crate::directory::nullable(crate::name::name_schema())
}

/// Most dependency choices of one booking.
pub const MAX_DEPENDENCY_CHOICES: usize = 10;

/// `dependencies` as JSON Schema: an object of at most [`MAX_DEPENDENCY_CHOICES`]
/// [`DependencyChoice`]s by dependency name (an offering's name, so no key holds NUL,
/// which the extractors refuse).
fn dependency_choices_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Object)
        .additional_properties(Some(utoipa::openapi::RefOr::Ref(
            utoipa::openapi::Ref::from_schema_name("DependencyChoice"),
        )))
        .property_names(Some(crate::name::name_schema()))
        .max_properties(Some(MAX_DEPENDENCY_CHOICES))
        .build()
}

impl DependencyChoice {
    /// What the choice for dependency `name` asks for, checked for its form: a binding or
    /// a configuration, never both or neither.
    pub fn check(&self, name: &str) -> Result<()> {
        let at = format!("/dependencies/{}", pointer_token(name));
        if self.booking.is_some() && self.plan.is_some() {
            return Err(Invalid::meaning(
                format!("{at}/plan"),
                "a bound dependency keeps its plan: name a plan only with a configuration",
            ));
        }
        match (&self.booking, &self.config) {
            (Some(_), Some(_)) => Err(Invalid::meaning(
                at,
                "bind a running booking (`booking`) or configure a new one (`config`), not both",
            )),
            (None, None) => Err(Invalid::meaning(
                at,
                "say how to get it: `booking` (the id of a running booking to bind) or `config` (a new one's configuration)",
            )),
            _ => Ok(()),
        }
    }
}

/// `key` as one token of a JSON pointer (RFC 6901: `~` and `/` escaped).
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn stable() -> String {
    "stable".into()
}

impl BookingSpec {
    /// Checks the booking against its offering: plan, channel and configuration.
    pub fn validate(&self, offering: &OfferingSpec) -> Result<UpdateChannel> {
        if offering.plan(&self.plan).is_none() {
            let plans: Vec<&str> = offering.plans.iter().map(|p| p.name.as_str()).collect();
            return Err(Invalid::unknown(
                "/plan",
                format!(
                    "offering `{}` has no plan `{}` (plans: {})",
                    offering.name,
                    self.plan,
                    plans.join(", ")
                ),
            ));
        }
        let channel = check_channel("/channel", &self.channel)?;
        if self.ending.is_some() && offering.data_export.is_none() {
            return Err(Invalid::meaning(
                "/ending",
                format!(
                    "offering `{}` declares no data export, so it cannot be booked for a \
                     time: nothing could hand its data back at the end",
                    offering.name
                ),
            ));
        }
        validate_config(&offering.config_schema, &self.config)?;
        check_config_secrets(&offering.config_schema, &self.config)?;
        self.check_dependency_choices(offering)?;
        Ok(channel)
    }

    /// Each dependency choice names one of the offering's dependencies and is a binding
    /// or a configuration.
    fn check_dependency_choices(&self, offering: &OfferingSpec) -> Result<()> {
        if self.dependencies.len() > MAX_DEPENDENCY_CHOICES {
            return Err(Invalid::new(
                "/dependencies",
                format!("at most {MAX_DEPENDENCY_CHOICES} dependency choices"),
            ));
        }
        for (name, choice) in &self.dependencies {
            if !offering.dependencies.iter().any(|d| d.offering == *name) {
                let known: Vec<&str> = offering
                    .dependencies
                    .iter()
                    .map(|d| d.offering.as_str())
                    .collect();
                return Err(Invalid::meaning(
                    format!("/dependencies/{}", pointer_token(name)),
                    format!(
                        "offering `{}` does not depend on `{name}` (its dependencies: {})",
                        offering.name,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
            choice.check(name)?;
        }
        Ok(())
    }
}

/// Refuses a configuration holding a secret that would reach Git in plaintext (see
/// [`crate::secrets`]): the same decision the renderer takes.
pub fn check_config_secrets(schema: &Value, config: &Value) -> Result<()> {
    match crate::secrets::find_secret(Some(schema), config) {
        Some(f) => Err(Invalid::meaning(
            format!("/config{}", f.pointer),
            f.message("booking"),
        )),
        None => Ok(()),
    }
}

/// Validates a tenant configuration; the error names the JSON pointer of the first
/// offending value (the first of [`config_problems`]).
pub fn validate_config(schema: &Value, config: &Value) -> Result<()> {
    match config_problems(schema, config).into_iter().next() {
        None => Ok(()),
        Some(p) => Err(Invalid::meaning(p.pointer, p.message)),
    }
}

/// What is wrong with one value of a configuration, so that a form can say it in its
/// reader's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFault {
    /// A required property is missing (the problem's pointer is the object lacking it).
    Required {
        property: String,
    },
    /// Text without the expected form (the schema's `pattern` or `format`).
    Form,
    TooShort {
        min: u64,
    },
    TooLong {
        max: u64,
    },
    /// A number below the schema's `minimum` (or `exclusiveMinimum`).
    TooSmall {
        min: String,
    },
    TooLarge {
        max: String,
    },
    /// A list with fewer entries than the schema's `minItems`.
    TooFew {
        min: u64,
    },
    /// None of the schema's `enum` values.
    NotAllowed,
    /// Another kind of value than the schema's `type` (text for a number, …).
    WrongType,
    /// Anything else; the message says what.
    Other,
}

/// One offending value of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// JSON pointer into the booking, e.g. `/config/domain`.
    pub pointer: String,
    pub fault: ConfigFault,
    /// The API's sentence for it.
    pub message: String,
}

/// Every offending value of a tenant configuration, ordered by pointer; none if it is
/// valid. The API refuses with the first; a form shows them all.
pub fn config_problems(schema: &Value, config: &Value) -> Vec<ConfigProblem> {
    let other = |pointer: String, message: String| ConfigProblem {
        pointer,
        fault: ConfigFault::Other,
        message,
    };
    if let Some((pointer, c)) = crate::portable::find_uncarriable(config) {
        return vec![other(
            format!("/config{pointer}"),
            crate::portable::describe(c),
        )];
    }
    let validator = match crate::catalog::config_validator(schema) {
        Ok(v) => v,
        Err(e) => {
            return vec![other(
                "/config".into(),
                format!("the offering's schema is unusable: {e}"),
            )]
        }
    };
    // A value the schema declares secret is never quoted back (the message of a
    // validation error shows the value).
    let secret: Vec<String> = crate::secrets::declared_secrets(schema, config)
        .into_iter()
        .map(|(pointer, _)| pointer)
        .collect();
    let mut problems: Vec<ConfigProblem> = validator
        .iter_errors(config)
        .map(|e| {
            let path = e.instance_path.to_string();
            let hidden = secret
                .iter()
                .any(|s| path == *s || path.starts_with(&format!("{s}/")));
            let message = if hidden {
                format!(
                    "does not satisfy `{}` of the offering's schema (the value is not shown: the schema declares it secret)",
                    e.schema_path
                )
            } else {
                e.to_string()
            };
            ConfigProblem {
                pointer: format!("/config{path}"),
                fault: fault_of(&e.kind),
                message,
            }
        })
        .collect();
    problems.sort_by(|a, b| (&a.pointer, &a.message).cmp(&(&b.pointer, &b.message)));
    problems
}

fn fault_of(kind: &jsonschema::error::ValidationErrorKind) -> ConfigFault {
    use jsonschema::error::ValidationErrorKind as K;
    let number = |v: &Value| v.to_string();
    match kind {
        K::Required { property } => ConfigFault::Required {
            property: property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_string),
        },
        K::Pattern { .. } | K::Format { .. } => ConfigFault::Form,
        K::MinLength { limit } => ConfigFault::TooShort { min: *limit },
        K::MaxLength { limit } => ConfigFault::TooLong { max: *limit },
        K::Minimum { limit } | K::ExclusiveMinimum { limit } => {
            ConfigFault::TooSmall { min: number(limit) }
        }
        K::Maximum { limit } | K::ExclusiveMaximum { limit } => {
            ConfigFault::TooLarge { max: number(limit) }
        }
        K::MinItems { limit } => ConfigFault::TooFew { min: *limit },
        K::Enum { .. } | K::Constant { .. } => ConfigFault::NotAllowed,
        K::Type { .. } => ConfigFault::WrongType,
        _ => ConfigFault::Other,
    }
}

/// Whether a booking still satisfies the policies in force, and where it could go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Compliance {
    pub compliant: bool,
    pub checked_at: DateTime<Utc>,
    /// Why the current site is no longer allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// A compliant site proposed as the target of a move (never moved silently).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_site: Option<String>,
}

/// A stored booking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Booking {
    pub id: String,
    pub organisation: String,
    pub offering: String,
    pub plan: String,
    #[schema(value_type = Object)]
    pub config: Value,
    pub channel: String,
    pub state: BookingState,
    /// The site it is placed on (while it holds one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// The version the booking should run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `prod` for an organisation's booking; `test` for a site's reference booking, the
    /// test tenant that every rollout updates first.
    #[serde(default)]
    pub environment: Environment,
    /// Why it was rejected, or other notes on its state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The booking this one was created for, if it is a dependency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependency_of: Option<String>,
    /// Bookings this one depends on (a tenancy: its instance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// The shared instance this booking is a tenancy of (see [`crate::shared`]): it runs
    /// there, on the instance's site, and holds no capacity of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compliance: Option<Compliance>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When it entered its current state (drives retention).
    pub state_since: DateTime<Utc>,
    /// Why its desired state cannot be delivered, if it cannot: the renderer refused it
    /// (its site keeps what it had, the other bookings are delivered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undeliverable: Option<Undeliverable>,
    /// The JSON pointers (into `config`) of the values its offering's schema declares
    /// secret that are set, sorted. Never the values: those are kept apart from the
    /// configuration, never returned, and reach the site only sealed for it (see
    /// [`crate::secrets`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(read_only)]
    pub secrets_set: Vec<String>,
    /// Its capacity windows, in time order, with which of their changes verbund has
    /// carried out (the plan it runs is the active window's, else `plan`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<crate::capacity::CapacityWindow>,
    /// A temporary booking's end: its last day, export target, reminder and export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending: Option<crate::ending::Ending>,
}

impl Booking {
    /// The plan it runs now: its active window's, else its own.
    pub fn plan_in_effect(&self) -> &str {
        crate::capacity::plan_in_effect(&self.plan, &self.windows)
    }
}

/// A booking the renderer refuses: the reason, since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Undeliverable {
    pub reason: String,
    pub since: DateTime<Utc>,
}

/// A change an organisation may make to its booking.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The whole new configuration. A value its offering's schema declares secret that
    /// it leaves out keeps its stored value (the API never returns it, so a client that
    /// sends back what it read keeps it); an empty string removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = optional_channel_schema)]
    pub channel: Option<String>,
    /// The capacity windows ahead, replacing those not begun (a window that runs now
    /// stays; `[]` removes the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 12)]
    pub windows: Option<Vec<crate::capacity::WindowSpec>>,
    /// A new last day or export target (also to make a booking temporary), until the
    /// end came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending: Option<crate::ending::EndingSpec>,
}

fn optional_channel_schema() -> utoipa::openapi::schema::Object {
    crate::directory::nullable(channel_schema())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_channel_breaks_its_form_or_its_meaning() {
        assert!(CHANNEL.compiles());
        for ok in [
            "stable",
            "pinned:1.2.3",
            "pinned:1.0.0-rc.1",
            "window:sat,sun 02:00-05:00",
            "window:mon 00:00-24:00",
        ] {
            assert!(check_channel("/channel", ok).is_ok(), "{ok}");
        }
        for form in [
            "",
            "Stable",
            "pinned:1.2",
            "window:sat 2:00-05:00",
            "window: sat 02:00-05:00",
            "window:sat,sun 02:00-05:00 ",
            "window:xyz 02:00-05:00",
            "stable\n",
        ] {
            assert_eq!(
                check_channel("/channel", form).unwrap_err().breach,
                crate::Breach::Form,
                "{form:?}"
            );
        }
        for meaning in [
            "window:sat 05:00-02:00",
            "window:sat 24:30-24:40",
            "window:sat 02:00-02:00",
        ] {
            assert_eq!(
                check_channel("/channel", meaning).unwrap_err().breach,
                crate::Breach::Meaning,
                "{meaning:?}"
            );
        }
    }

    #[test]
    fn lifecycle_happy_path() {
        let mut s = BookingState::Requested;
        for e in [
            BookingEvent::RequireApproval,
            BookingEvent::Place,
            BookingEvent::Provision,
            BookingEvent::BecomeReady,
            BookingEvent::StartUpdate,
            BookingEvent::Degrade,
            BookingEvent::BecomeReady,
            BookingEvent::Cancel,
            BookingEvent::Retain,
            BookingEvent::Purge,
        ] {
            s = transition(s, e).unwrap();
        }
        assert_eq!(s, BookingState::Deleted);
    }

    #[test]
    fn impossible_transitions_are_refused() {
        assert!(transition(BookingState::Rejected, BookingEvent::Place).is_err());
        assert!(transition(BookingState::Deleted, BookingEvent::Cancel).is_err());
        assert!(transition(BookingState::Retained, BookingEvent::BecomeReady).is_err());
        assert!(transition(BookingState::Placed, BookingEvent::BecomeReady).is_err());
    }

    #[test]
    fn channels_round_trip() {
        for s in ["stable", "pinned:1.2.3", "window:sat,sun 02:00-05:30"] {
            assert_eq!(s.parse::<UpdateChannel>().unwrap().to_string(), s);
        }
        for bad in [
            "beta",
            "pinned:1.2",
            "window:sat 05:00-02:00",
            "window:xyz 01:00-02:00",
        ] {
            assert!(bad.parse::<UpdateChannel>().is_err(), "{bad}");
        }
    }

    #[test]
    fn config_errors_name_the_pointer() {
        let schema = json!({
            "type": "object",
            "required": ["contact"],
            "properties": {"contact": {"type": "object", "properties": {"email": {"type": "string", "format": "email", "pattern": "@"}}}}
        });
        assert!(validate_config(&schema, &json!({"contact": {"email": "a@b.de"}})).is_ok());
        let e = validate_config(&schema, &json!({"contact": {"email": 5}})).unwrap_err();
        assert_eq!(e.field, "/config/contact/email");
        let e = validate_config(&schema, &json!({})).unwrap_err();
        assert_eq!(e.field, "/config");
    }

    #[test]
    fn config_problems_are_all_listed_with_what_is_wrong() {
        let schema = json!({
            "type": "object",
            "required": ["domain", "contact"],
            "properties": {
                "domain": {"type": "string", "pattern": "^[a-z.]+$"},
                "users": {"type": "integer", "minimum": 1},
                "size": {"enum": ["s", "m"]},
                "contact": {"type": "string"},
            }
        });
        let problems = config_problems(
            &schema,
            &json!({"domain": "Nein!", "users": 0, "size": "xl"}),
        );
        let faults: Vec<(&str, &ConfigFault)> = problems
            .iter()
            .map(|p| (p.pointer.as_str(), &p.fault))
            .collect();
        assert_eq!(
            faults,
            [
                (
                    "/config",
                    &ConfigFault::Required {
                        property: "contact".into()
                    }
                ),
                ("/config/domain", &ConfigFault::Form),
                ("/config/size", &ConfigFault::NotAllowed),
                ("/config/users", &ConfigFault::TooSmall { min: "1".into() }),
            ]
        );
        // The API's refusal is the first of them, in its words.
        let e = validate_config(
            &schema,
            &json!({"domain": "Nein!", "users": 0, "size": "xl"}),
        )
        .unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            (problems[0].pointer.as_str(), problems[0].message.as_str())
        );
        assert!(config_problems(&schema, &json!({"domain": "a.de", "contact": "x"})).is_empty());
    }

    #[test]
    fn a_list_with_too_few_entries_says_how_many_are_needed() {
        let schema = json!({
            "type": "object",
            "properties": {"hosts": {"type": "array", "minItems": 2, "items": {"type": "string"}}}
        });
        let problems = config_problems(&schema, &json!({"hosts": ["a.de"]}));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].pointer, "/config/hosts");
        assert_eq!(problems[0].fault, ConfigFault::TooFew { min: 2 });
    }
}
