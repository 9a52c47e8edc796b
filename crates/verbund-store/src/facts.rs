//! Facts with provenance (migration `0012`): who stated each placement fact of a provider
//! or a site and who approved it, and the operators' proposals that wait for a
//! federation admin. Which fields are facts is `verbund_domain::facts`'s to say; who may
//! state, propose, approve or reject is Cedar's (the API asks before it calls in here).

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;
use verbund_domain::audit::Change;
use verbund_domain::directory::{ProviderSpec, SiteSpec};
use verbund_domain::facts::{
    changed_facts, facts_of, keep_facts, with_facts, FactKind, FactProposal, FactSheet, Facts,
    HasFacts, ProposalState, StatedFact,
};
use verbund_domain::page::{Page, PageRequest};
use verbund_domain::Invalid;

use crate::error::{Result, StoreError};
use crate::rows::{
    from_json, paginate, parse_ts, parse_ts_opt, stored_time, to_json, ts, Arg, Select,
};
use crate::Store;

/// Filters for listing proposals.
#[derive(Debug, Clone, Default)]
pub struct ProposalFilter {
    /// Only proposals concerning these providers (or their sites); `None` for all.
    pub providers: Option<Vec<String>>,
    pub state: Option<ProposalState>,
    pub kind: Option<FactKind>,
    /// Only proposals for this provider or site (with `kind`).
    pub object: Option<String>,
}

const PROPOSAL_COLUMNS: &str = "id, kind, object, provider, facts, state, proposer_id, \
     proposed_by, proposed_at, decided_by, decided_at, reason";

fn table(kind: FactKind) -> &'static str {
    match kind {
        FactKind::Provider => "providers",
        FactKind::Site => "sites",
    }
}

fn proposal(r: &AnyRow) -> Result<FactProposal> {
    let kind: String = r.try_get(1)?;
    let state: String = r.try_get(5)?;
    Ok(FactProposal {
        id: r.try_get(0)?,
        kind: FactKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("fact kind `{kind}`")))?,
        object: r.try_get(2)?,
        provider: r.try_get(3)?,
        facts: from_json(&r.try_get::<String, _>(4)?)?,
        state: ProposalState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("proposal state `{state}`")))?,
        proposer_id: r.try_get(6)?,
        proposed_by: r.try_get(7)?,
        proposed_at: parse_ts(&r.try_get::<String, _>(8)?)?,
        decided_by: r.try_get(9)?,
        decided_at: parse_ts_opt(r.try_get(10)?)?,
        reason: r.try_get(11)?,
    })
}

fn value<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// The stored spec of a provider or a site, read inside the write transaction.
async fn read_spec<T: HasFacts>(conn: &mut sqlx::AnyConnection, name: &str) -> Result<Option<T>> {
    sqlx::query(&format!(
        "SELECT spec FROM {} WHERE name = $1",
        table(T::KIND)
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| from_json(&r.try_get::<String, _>(0)?))
    .transpose()
}

async fn write_spec<T: HasFacts>(
    conn: &mut sqlx::AnyConnection,
    spec: &T,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE {} SET spec = $2, updated_at = $3 WHERE name = $1",
        table(T::KIND)
    ))
    .bind(spec.name().to_string())
    .bind(to_json(spec)?)
    .bind(ts(&now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// An approval: who approved which proposal, when.
struct Approval<'a> {
    by: &'a str,
    at: DateTime<Utc>,
    proposal: &'a str,
}

/// Records who stated the current value of each of `fields` (and who approved it).
async fn record_stated<'f>(
    conn: &mut sqlx::AnyConnection,
    kind: FactKind,
    object: &str,
    fields: impl IntoIterator<Item = &'f String>,
    stated_by: &str,
    stated_at: DateTime<Utc>,
    approval: Option<&Approval<'_>>,
) -> Result<()> {
    for field in fields {
        sqlx::query(
            "INSERT INTO fact_provenance \
             (kind, object, field, stated_by, stated_at, approved_by, approved_at, proposal) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (kind, object, field) DO UPDATE SET stated_by = excluded.stated_by, \
             stated_at = excluded.stated_at, approved_by = excluded.approved_by, \
             approved_at = excluded.approved_at, proposal = excluded.proposal",
        )
        .bind(kind.as_str())
        .bind(object.to_string())
        .bind(field.clone())
        .bind(stated_by.to_string())
        .bind(ts(&stated_at))
        .bind(approval.map(|a| a.by.to_string()))
        .bind(approval.map(|a| ts(&a.at)))
        .bind(approval.map(|a| a.proposal.to_string()))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Records a federation admin's statement of `spec` as `actor`'s: every fact of a new
/// object, the changed ones of an existing one (`before`).
pub(crate) async fn record_statement<T: HasFacts>(
    conn: &mut sqlx::AnyConnection,
    before: Option<&T>,
    spec: &T,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let stated = match before {
        Some(b) => changed_facts(b, spec),
        None => facts_of(spec),
    };
    record_stated(conn, T::KIND, spec.name(), stated.keys(), actor, now, None).await
}

async fn proposal_in(conn: &mut sqlx::AnyConnection, id: &str) -> Result<FactProposal> {
    sqlx::query(&format!(
        "SELECT {PROPOSAL_COLUMNS} FROM fact_proposals WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| proposal(&r))
    .transpose()?
    .ok_or_else(|| StoreError::not_found("fact proposal", id))
}

/// Records the decision on a pending proposal.
async fn decide(
    conn: &mut sqlx::AnyConnection,
    p: &mut FactProposal,
    state: ProposalState,
    actor: &str,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<()> {
    p.state = state;
    p.decided_by = Some(actor.to_string());
    p.decided_at = Some(now);
    p.reason = reason;
    sqlx::query(
        "UPDATE fact_proposals SET state = $2, decided_by = $3, decided_at = $4, reason = $5 \
         WHERE id = $1",
    )
    .bind(p.id.clone())
    .bind(p.state.as_str())
    .bind(p.decided_by.clone())
    .bind(p.decided_at.as_ref().map(ts))
    .bind(p.reason.clone())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn still_pending(p: &FactProposal) -> Result<()> {
    if p.state == ProposalState::Pending {
        return Ok(());
    }
    Err(StoreError::Conflict(format!(
        "proposal `{}` is {} already",
        p.id,
        p.state.as_str()
    )))
}

impl Store {
    /// An operator's change of its own provider or site: the operational fields apply at
    /// once (audited as `provider.update`/`site.update`), the placement facts that differ
    /// from the stored ones become a pending proposal (audited as
    /// `<kind>.facts.propose`), which changes nothing until a federation admin approves
    /// it; the same facts asked again answer the proposal already pending for them.
    /// Returns the proposal, if the change asked for one.
    pub async fn apply_as_operator<T: HasFacts>(
        &self,
        actor: &str,
        proposer_id: &str,
        spec: &T,
        now: DateTime<Utc>,
    ) -> Result<Option<FactProposal>> {
        spec.check()?;
        let now = stored_time(now);
        let kind = T::KIND;
        let mut w = self.begin_write().await?;
        let current: T = read_spec(&mut w.tx, spec.name())
            .await?
            .ok_or_else(|| StoreError::not_found(kind.as_str(), spec.name()))?;
        if current.provider() != spec.provider() {
            return Err(Invalid::conflict(
                "/provider",
                format!(
                    "site `{}` belongs to provider `{}`; a site cannot change its provider",
                    spec.name(),
                    current.provider()
                ),
            )
            .into());
        }
        let operational = keep_facts(spec, &current)?;
        if operational != current {
            write_spec(&mut w.tx, &operational, now).await?;
            w.audit(
                Change {
                    actor: actor.into(),
                    action: format!("{}.update", kind.as_str()),
                    object: format!("{}/{}", kind.as_str(), spec.name()),
                    before: Some(value(&current)),
                    after: Some(value(&operational)),
                },
                now,
            )
            .await?;
        }
        let facts = changed_facts(&current, spec);
        let same = sqlx::query(&format!(
            "SELECT {PROPOSAL_COLUMNS} FROM fact_proposals WHERE kind = $1 AND object = $2 \
             AND state = 'pending' AND facts = $3 ORDER BY id LIMIT 1"
        ))
        .bind(kind.as_str())
        .bind(spec.name().to_string())
        .bind(to_json(&facts)?)
        .fetch_optional(&mut *w.tx)
        .await?
        .map(|r| proposal(&r))
        .transpose()?;
        let proposal = if facts.is_empty() {
            None
        } else if let Some(pending) = same {
            // The same change asked again (a re-applied file): the proposal waiting for it.
            Some(pending)
        } else {
            let p = FactProposal {
                id: uuid::Uuid::now_v7().to_string(),
                kind,
                object: spec.name().to_string(),
                provider: spec.provider().to_string(),
                facts,
                state: ProposalState::Pending,
                proposed_by: actor.to_string(),
                proposer_id: proposer_id.to_string(),
                proposed_at: now,
                decided_by: None,
                decided_at: None,
                reason: None,
            };
            sqlx::query(&format!(
                "INSERT INTO fact_proposals ({PROPOSAL_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, NULL)"
            ))
            .bind(p.id.clone())
            .bind(kind.as_str())
            .bind(p.object.clone())
            .bind(p.provider.clone())
            .bind(to_json(&p.facts)?)
            .bind(p.state.as_str())
            .bind(p.proposer_id.clone())
            .bind(p.proposed_by.clone())
            .bind(ts(&now))
            .execute(&mut *w.tx)
            .await?;
            w.audit(
                Change {
                    actor: actor.into(),
                    action: format!("{}.facts.propose", kind.as_str()),
                    object: format!("fact-proposal/{}", p.id),
                    before: Some(json!({"facts": changed_facts(spec, &current)})),
                    after: Some(value(&p)),
                },
                now,
            )
            .await?;
            Some(p)
        };
        w.commit().await?;
        Ok(proposal)
    }

    /// Approves a pending proposal: its facts apply to the provider or site as it is now,
    /// each recorded as stated by the proposer and approved by `actor`, in one
    /// transaction with a `<kind>.facts.approve` audit event on the object that names
    /// both. That the approver is not the proposer is the caller's (Cedar's) decision.
    pub async fn approve_fact_proposal(
        &self,
        id: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<FactProposal> {
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let mut p = proposal_in(&mut w.tx, id).await?;
        still_pending(&p)?;
        let before = match p.kind {
            FactKind::Provider => apply_facts::<ProviderSpec>(&mut w.tx, &p, now).await?,
            FactKind::Site => apply_facts::<SiteSpec>(&mut w.tx, &p, now).await?,
        };
        record_stated(
            &mut w.tx,
            p.kind,
            &p.object,
            p.facts.keys(),
            &p.proposed_by,
            p.proposed_at,
            Some(&Approval {
                by: actor,
                at: now,
                proposal: &p.id,
            }),
        )
        .await?;
        decide(&mut w.tx, &mut p, ProposalState::Approved, actor, None, now).await?;
        w.audit(
            Change {
                actor: actor.into(),
                action: format!("{}.facts.approve", p.kind.as_str()),
                object: format!("{}/{}", p.kind.as_str(), p.object),
                before: Some(json!({"facts": before})),
                after: Some(json!({
                    "proposal": p.id,
                    "proposed_by": p.proposed_by,
                    "proposed_at": p.proposed_at,
                    "approved_by": actor,
                    "facts": p.facts,
                })),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(p)
    }

    /// Rejects a pending proposal; nothing else changes.
    pub async fn reject_fact_proposal(
        &self,
        id: &str,
        actor: &str,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<FactProposal> {
        let now = stored_time(now);
        let mut w = self.begin_write().await?;
        let mut p = proposal_in(&mut w.tx, id).await?;
        still_pending(&p)?;
        decide(
            &mut w.tx,
            &mut p,
            ProposalState::Rejected,
            actor,
            reason,
            now,
        )
        .await?;
        w.audit(
            Change {
                actor: actor.into(),
                action: format!("{}.facts.reject", p.kind.as_str()),
                object: format!("fact-proposal/{}", p.id),
                before: None,
                after: Some(value(&p)),
            },
            now,
        )
        .await?;
        w.commit().await?;
        Ok(p)
    }

    pub async fn get_fact_proposal(&self, id: &str) -> Result<FactProposal> {
        let mut conn = self.pool.acquire().await?;
        proposal_in(&mut conn, id).await
    }

    /// Proposals, oldest first.
    pub async fn list_fact_proposals(
        &self,
        filter: &ProposalFilter,
        page: &PageRequest,
    ) -> Result<Page<FactProposal>> {
        let mut s = Select::default();
        if let Some(providers) = &filter.providers {
            if providers.is_empty() {
                return Ok(Page {
                    items: vec![],
                    next: None,
                });
            }
            s.and_many(
                "provider IN (",
                providers.iter().map(|p| Arg::Text(p.clone())).collect(),
            );
        }
        if let Some(state) = filter.state {
            s.and("state = {}", Arg::Text(state.as_str().into()));
        }
        if let Some(kind) = filter.kind {
            s.and("kind = {}", Arg::Text(kind.as_str().into()));
        }
        if let Some(object) = &filter.object {
            s.and("object = {}", Arg::Text(object.clone()));
        }
        if let Some(after) = &page.after {
            s.and("id > {}", Arg::Text(after.clone()));
        }
        let limit = page.limit();
        let sql = s.sql(
            &format!("SELECT {PROPOSAL_COLUMNS} FROM fact_proposals"),
            &format!("ORDER BY id LIMIT {}", limit + 1),
        );
        let rows = s.bind(&sql).fetch_all(&self.pool).await?;
        let items = rows.iter().map(proposal).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |p| p.id.clone()))
    }

    /// The placement facts of a provider or a site with their provenance, and its
    /// pending proposals.
    pub async fn fact_sheet(&self, kind: FactKind, name: &str) -> Result<FactSheet> {
        let mut conn = self.pool.acquire().await?;
        let facts = match kind {
            FactKind::Provider => read_spec::<ProviderSpec>(&mut conn, name)
                .await?
                .map(|s| facts_of(&s)),
            FactKind::Site => read_spec::<SiteSpec>(&mut conn, name)
                .await?
                .map(|s| facts_of(&s)),
        }
        .ok_or_else(|| StoreError::not_found(kind.as_str(), name))?;
        let rows = sqlx::query(
            "SELECT field, stated_by, stated_at, approved_by, approved_at, proposal \
             FROM fact_provenance WHERE kind = $1 AND object = $2",
        )
        .bind(kind.as_str())
        .bind(name.to_string())
        .fetch_all(&mut *conn)
        .await?;
        let mut stated = std::collections::HashMap::new();
        for r in &rows {
            let field: String = r.try_get(0)?;
            stated.insert(field, r);
        }
        let mut out = Vec::with_capacity(facts.len());
        for (field, value) in facts {
            let mut fact = StatedFact {
                field: field.clone(),
                value,
                stated_by: None,
                stated_at: None,
                approved_by: None,
                approved_at: None,
                proposal: None,
            };
            if let Some(r) = stated.get(&field) {
                fact.stated_by = r.try_get(1)?;
                fact.stated_at = parse_ts_opt(r.try_get(2)?)?;
                fact.approved_by = r.try_get(3)?;
                fact.approved_at = parse_ts_opt(r.try_get(4)?)?;
                fact.proposal = r.try_get(5)?;
            }
            out.push(fact);
        }
        drop(conn);
        let pending = self
            .list_fact_proposals(
                &ProposalFilter {
                    state: Some(ProposalState::Pending),
                    kind: Some(kind),
                    object: Some(name.to_string()),
                    ..Default::default()
                },
                &PageRequest {
                    limit: Some(1000),
                    after: None,
                },
            )
            .await?
            .items;
        Ok(FactSheet {
            kind,
            object: name.to_string(),
            facts: out,
            pending,
        })
    }
}

/// Applies a proposal's facts to its object inside the transaction; returns the
/// object's previous values of those facts.
async fn apply_facts<T: HasFacts>(
    conn: &mut sqlx::AnyConnection,
    p: &FactProposal,
    now: DateTime<Utc>,
) -> Result<Facts> {
    let current: T = read_spec(&mut *conn, &p.object)
        .await?
        .ok_or_else(|| StoreError::not_found(p.kind.as_str(), &p.object))?;
    // The proposal was checked when it was made; what no longer fits the object as it
    // is now conflicts with its current state.
    let updated = with_facts(&current, &p.facts)
        .and_then(|u| u.check().map(|()| u))
        .map_err(|e| e.with_breach(verbund_domain::Breach::Conflict))?;
    let before = facts_of(&current)
        .into_iter()
        .filter(|(f, _)| p.facts.contains_key(f))
        .collect();
    if updated != current {
        write_spec(&mut *conn, &updated, now).await?;
    }
    Ok(before)
}
