//! Accounts: users, their roles, and API tokens.
//!
//! A role is held in a scope: an organisation (org-admin, org-member, vendor), a
//! provider (provider-operator) or the whole federation (federation-admin, auditor).
//! Tokens are random secrets shown once; only their SHA-256 is stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::error::{Invalid, Result};
use crate::name::{check_text, DISPLAY_NAME_MAX};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    FederationAdmin,
    ProviderOperator,
    Vendor,
    OrgAdmin,
    OrgMember,
    Auditor,
    /// Reads the federation's metrics (`/metrics`) and nothing else: the role of the
    /// account whose token a Prometheus scrapes with.
    Monitoring,
}

/// What a role is held in: an organisation, a provider, or neither (the federation), and
/// whether it can be delegated to the organisations below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub organisation: bool,
    pub provider: bool,
    pub delegable: bool,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::FederationAdmin,
        Role::ProviderOperator,
        Role::Vendor,
        Role::OrgAdmin,
        Role::OrgMember,
        Role::Auditor,
        Role::Monitoring,
    ];

    /// The scope a membership of this role names.
    pub fn scope(self) -> Scope {
        let (organisation, provider) = match self {
            Role::FederationAdmin | Role::Auditor | Role::Monitoring => (false, false),
            Role::ProviderOperator => (false, true),
            Role::Vendor | Role::OrgAdmin | Role::OrgMember => (true, false),
        };
        Scope {
            organisation,
            provider,
            delegable: self == Role::OrgAdmin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::FederationAdmin => "federation-admin",
            Role::ProviderOperator => "provider-operator",
            Role::Vendor => "vendor",
            Role::OrgAdmin => "org-admin",
            Role::OrgMember => "org-member",
            Role::Auditor => "auditor",
            Role::Monitoring => "monitoring",
        }
    }
}

/// A role held by a user, with its scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    pub role: Role,
    /// Organisation id, for org-admin, org-member and vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    /// Provider name, for provider-operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// For org-admin: the role also covers every organisation below this one
    /// (e.g. a Kreis IT department administering its Gemeinden).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delegated: bool,
}

impl Membership {
    /// The rules between a role and its scope as JSON Schema: `oneOf` a branch per kind of
    /// [`Scope`], naming its roles. `validate` decides by the same [`Role::scope`].
    pub fn scope_rule_schema() -> serde_json::Value {
        let mut branches: Vec<(Scope, Vec<&str>)> = Vec::new();
        for role in Role::ALL {
            let scope = role.scope();
            match branches.iter_mut().find(|(s, _)| *s == scope) {
                Some((_, roles)) => roles.push(role.as_str()),
                None => branches.push((scope, vec![role.as_str()])),
            }
        }
        let named = |needed: bool| {
            if needed {
                serde_json::json!({"type": "string"})
            } else {
                serde_json::json!({"type": "null"})
            }
        };
        let one_of: Vec<serde_json::Value> = branches
            .into_iter()
            .map(|(scope, roles)| {
                let mut required = vec!["role"];
                if scope.organisation {
                    required.push("organisation");
                }
                if scope.provider {
                    required.push("provider");
                }
                let delegated = if scope.delegable {
                    serde_json::json!({"type": "boolean"})
                } else {
                    serde_json::json!({"const": false})
                };
                serde_json::json!({
                    "properties": {
                        "role": {"enum": roles},
                        "organisation": named(scope.organisation),
                        "provider": named(scope.provider),
                        "delegated": delegated,
                    },
                    "required": required,
                })
            })
            .collect();
        serde_json::json!({ "oneOf": one_of })
    }

    /// The federation administrator's role: everything, everywhere.
    pub fn federation_admin() -> Membership {
        Membership {
            role: Role::FederationAdmin,
            organisation: None,
            provider: None,
            delegated: false,
        }
    }

    pub fn validate(&self, at: &str) -> Result<()> {
        let scope = self.role.scope();
        if self.delegated && !scope.delegable {
            return Err(Invalid::new(
                format!("{at}/delegated"),
                "only an org-admin role can be delegated to the organisations below",
            ));
        }
        let (needs_org, needs_provider) = (scope.organisation, scope.provider);
        let role = self.role.as_str();
        match (needs_org, self.organisation.is_some()) {
            (true, false) => {
                return Err(Invalid::new(
                    format!("{at}/organisation"),
                    format!("role `{role}` needs an organisation"),
                ))
            }
            (false, true) => {
                return Err(Invalid::new(
                    format!("{at}/organisation"),
                    format!("role `{role}` is not scoped to an organisation"),
                ))
            }
            _ => {}
        }
        match (needs_provider, self.provider.is_some()) {
            (true, false) => Err(Invalid::new(
                format!("{at}/provider"),
                format!("role `{role}` needs a provider"),
            )),
            (false, true) => Err(Invalid::new(
                format!("{at}/provider"),
                format!("role `{role}` is not scoped to a provider"),
            )),
            _ => Ok(()),
        }
    }
}

/// What a client submits to create a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// Login name: lowercase letters, digits, `.`, `-`, `_`, `@`.
    #[schema(schema_with = login_schema)]
    pub name: String,
    #[schema(schema_with = crate::name::display_name_schema)]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = email_schema)]
    pub email: Option<String>,
    #[schema(min_items = 1)]
    pub memberships: Vec<Membership>,
}

/// The longest e-mail address.
pub const EMAIL_MAX: usize = 254;

/// What `UserSpec::validate` asks of an e-mail address: an `@` (and no NUL).
pub static EMAIL: crate::name::Pattern =
    crate::name::Pattern::new(|| "^[^\\u0000]*@[^\\u0000]*$".into());

fn email_schema() -> utoipa::openapi::schema::Object {
    crate::directory::nullable(crate::name::bounded_schema(&EMAIL, EMAIL_MAX))
}

/// The longest login name.
pub const LOGIN_MAX: usize = 100;

/// The characters of a login name besides lowercase letters and digits.
const LOGIN_PUNCTUATION: &[u8] = b"._-@";

/// The JSON Schema of a login name `UserSpec::validate` accepts.
pub fn login_schema() -> utoipa::openapi::schema::Object {
    let punctuation: String = LOGIN_PUNCTUATION
        .iter()
        .map(|&b| format!("\\x{b:02x}"))
        .collect();
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(LOGIN_MAX))
        .pattern(Some(format!("^[a-z0-9{punctuation}]+$")))
        .build()
}

impl UserSpec {
    pub fn validate(&self) -> Result<()> {
        let ok = !self.name.is_empty()
            && self.name.len() <= LOGIN_MAX
            && self.name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || LOGIN_PUNCTUATION.contains(&b)
            });
        if !ok {
            return Err(Invalid::new(
                "/name",
                format!(
                    "`{}` is not a login name (lowercase letters, digits, `.`, `-`, `_`, `@`)",
                    self.name
                ),
            ));
        }
        check_text("/display_name", &self.display_name, DISPLAY_NAME_MAX)?;
        if let Some(email) = &self.email {
            if !EMAIL.is_match(email) || email.chars().count() > EMAIL_MAX {
                return Err(Invalid::new(
                    "/email",
                    format!("`{email}` is not an e-mail address"),
                ));
            }
        }
        if self.memberships.is_empty() {
            return Err(Invalid::new(
                "/memberships",
                "a user needs at least one role",
            ));
        }
        for (i, m) in self.memberships.iter().enumerate() {
            m.validate(&format!("/memberships/{i}"))?;
        }
        Ok(())
    }
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    #[serde(flatten)]
    pub spec: UserSpec,
    pub created_at: DateTime<Utc>,
    /// Since when the account is disabled: it signs in nowhere, and its tokens and
    /// sessions do not work (see `verbund user disable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<DateTime<Utc>>,
}

/// What revoking an account's access ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Revoked {
    /// API tokens revoked.
    pub tokens: u64,
    /// Portal sessions ended.
    pub sessions: u64,
}

/// A password reset handed out (without its token, which only its recipient sees).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PasswordReset {
    /// The account whose password the token resets.
    pub user: String,
    pub expires_at: DateTime<Utc>,
}

/// What a client submits to create an API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// What the token is for, e.g. `ci-pipeline`.
    #[schema(schema_with = token_name_schema)]
    pub name: String,
    /// The user the token acts as; defaults to the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The longest name of a token (an API token's or a site's).
pub const TOKEN_NAME_MAX: usize = 100;

/// The JSON Schema of a token's name.
pub fn token_name_schema() -> utoipa::openapi::schema::Object {
    crate::name::text_schema(TOKEN_NAME_MAX)
}

/// A stored API token (without its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub user: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Token {
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// Prefix of every verbund API token, so that secret scanners can recognise them.
pub const TOKEN_PREFIX: &str = "vbd_";

/// Formats random bytes as a token secret.
pub fn token_secret(random: &[u8; 32]) -> String {
    format!("{TOKEN_PREFIX}{}", hex::encode(random))
}

/// The stored form of a token secret.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The authenticated caller: a user and the roles it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub user_name: String,
    pub memberships: Vec<Membership>,
}

impl Principal {
    pub fn has_role(&self, role: Role) -> bool {
        self.memberships.iter().any(|m| m.role == role)
    }

    /// Organisations in which the caller holds `role`.
    pub fn organisations_with(&self, role: Role) -> impl Iterator<Item = &str> {
        self.memberships
            .iter()
            .filter(move |m| m.role == role)
            .filter_map(|m| m.organisation.as_deref())
    }

    /// The actor string recorded in the audit trail.
    pub fn actor(&self) -> String {
        format!("user/{}", self.user_name)
    }
}

/// A site's credential (its secret is only ever shown once, at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SiteToken {
    pub id: String,
    pub site: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl SiteToken {
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_scopes() {
        let m = |role, o: Option<&str>, p: Option<&str>| Membership {
            role,
            organisation: o.map(Into::into),
            provider: p.map(Into::into),
            delegated: false,
        };
        assert!(m(Role::FederationAdmin, None, None).validate("").is_ok());
        assert!(m(Role::OrgAdmin, None, None).validate("").is_err());
        assert!(m(Role::OrgAdmin, Some("o"), None).validate("").is_ok());
        assert!(m(Role::ProviderOperator, Some("o"), Some("p"))
            .validate("")
            .is_err());
        assert!(m(Role::ProviderOperator, None, Some("p"))
            .validate("")
            .is_ok());
    }

    #[test]
    fn token_hash_is_stable_and_hex() {
        let s = token_secret(&[7; 32]);
        assert!(s.starts_with(TOKEN_PREFIX));
        assert_eq!(hash_token(&s), hash_token(&s));
        assert_eq!(hash_token(&s).len(), 64);
    }
}
