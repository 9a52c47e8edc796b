//! Organisations' registration numbers as the federation states them (migration 0019):
//! kept beside the organisation, not in it, because the directory import owns the
//! organisation's record while only a federation admin states its number. Each change
//! is audited as `organisation.registration` with what was stated before.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use utoipa::ToSchema;
use verbund_domain::audit::Change;
use verbund_domain::registration::{Registration, RegistrationKind};

use crate::rows::{parse_ts, stored_time, ts};
use crate::{Result, Store, StoreError};

/// An organisation's registration number as stated, with who stated it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrganisationRegistration {
    pub organisation: String,
    /// `null`: none stated (an organisation with an ARS is registered by it).
    #[schema(schema_with = verbund_domain::registration::registration_schema)]
    pub registration: Option<Registration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stated_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stated_at: Option<DateTime<Utc>>,
}

fn kind(text: &str) -> Result<RegistrationKind> {
    serde_json::from_value(json!(text))
        .map_err(|_| StoreError::Corrupt(format!("registration kind `{text}`")))
}

impl Store {
    /// The registration number the federation stated for organisation `id` (404 for an
    /// organisation that does not exist).
    pub async fn organisation_registration(&self, id: &str) -> Result<OrganisationRegistration> {
        let mut conn = self.pool.acquire().await?;
        read(&mut conn, id).await
    }

    /// States organisation `id`'s registration number (`None`: takes it back), audited
    /// as `organisation.registration`; a statement that changes nothing records nothing.
    pub async fn state_organisation_registration(
        &self,
        actor: &str,
        id: &str,
        registration: Option<&Registration>,
        now: DateTime<Utc>,
    ) -> Result<OrganisationRegistration> {
        if let Some(r) = registration {
            r.validate("/registration")?;
        }
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let before = read(&mut w.tx, id).await?;
        if before.registration.as_ref() == registration {
            return Ok(before);
        }
        match registration {
            Some(r) => {
                sqlx::query(
                    "INSERT INTO organisation_registrations (organisation, kind, value, stated_by, stated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organisation) DO UPDATE SET \
                     kind = excluded.kind, value = excluded.value, stated_by = excluded.stated_by, \
                     stated_at = excluded.stated_at",
                )
                .bind(id)
                .bind(r.kind.as_str())
                .bind(&r.value)
                .bind(actor)
                .bind(ts(&now))
                .execute(&mut *w.tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM organisation_registrations WHERE organisation = $1")
                    .bind(id)
                    .execute(&mut *w.tx)
                    .await?;
            }
        }
        let after = OrganisationRegistration {
            organisation: id.to_string(),
            registration: registration.cloned(),
            stated_by: registration.map(|_| actor.to_string()),
            stated_at: registration.map(|_| now),
        };
        w.audit(
            Change {
                actor: actor.into(),
                action: "organisation.registration".into(),
                object: format!("organisation/{id}"),
                before: Some(json!({"registration": before.registration})),
                after: Some(json!({"registration": after.registration})),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(after)
    }
}

async fn read(conn: &mut sqlx::AnyConnection, id: &str) -> Result<OrganisationRegistration> {
    let exists = sqlx::query("SELECT 1 FROM organisations WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Err(StoreError::not_found("organisation", id));
    }
    let row = sqlx::query(
        "SELECT kind, value, stated_by, stated_at FROM organisation_registrations WHERE organisation = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = row else {
        return Ok(OrganisationRegistration {
            organisation: id.to_string(),
            registration: None,
            stated_by: None,
            stated_at: None,
        });
    };
    Ok(OrganisationRegistration {
        organisation: id.to_string(),
        registration: Some(Registration {
            kind: kind(&r.try_get::<String, _>(0)?)?,
            value: r.try_get(1)?,
        }),
        stated_by: Some(r.try_get(2)?),
        stated_at: Some(parse_ts(&r.try_get::<String, _>(3)?)?),
    })
}
