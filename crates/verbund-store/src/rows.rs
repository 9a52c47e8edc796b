//! Conversions between domain values and the columns both databases understand
//! (text, 64-bit integers), plus a small builder for filtered list queries.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{de::DeserializeOwned, Serialize};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

use crate::error::{Result, StoreError};

pub(crate) fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `t` at the precision timestamps are stored with, so that what a write returns equals
/// what later reads return.
pub(crate) fn stored_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

pub(crate) fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp `{s}`: {e}")))
}

pub(crate) fn parse_ts_opt(s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

pub(crate) fn from_json<T: DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("cannot decode: {e}")))
}

/// A bound query argument.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// Builds `SELECT … WHERE a AND b … ORDER BY … LIMIT …` with numbered placeholders.
#[derive(Debug, Clone, Default)]
pub(crate) struct Select {
    conditions: Vec<String>,
    args: Vec<Arg>,
}

impl Select {
    /// Adds a condition; `{}` in it stands for the next placeholder.
    pub(crate) fn and(&mut self, condition: &str, arg: Arg) -> &mut Self {
        self.args.push(arg);
        let n = self.args.len();
        self.conditions
            .push(condition.replace("{}", &format!("${n}")));
        self
    }

    /// Adds a condition in which each `{}` stands for the next of `args`, in order.
    pub(crate) fn and_args(&mut self, condition: &str, args: Vec<Arg>) -> &mut Self {
        let mut out = String::new();
        let mut rest = condition;
        for a in args {
            let Some(i) = rest.find("{}") else { break };
            out.push_str(rest.get(..i).unwrap_or_default());
            self.args.push(a);
            out.push_str(&format!("${}", self.args.len()));
            rest = rest.get(i + 2..).unwrap_or_default();
        }
        out.push_str(rest);
        self.conditions.push(out);
        self
    }

    /// Adds a condition without a placeholder.
    pub(crate) fn and_plain(&mut self, condition: &str) -> &mut Self {
        self.conditions.push(condition.to_string());
        self
    }

    /// Adds `head $a, $b, …` closed with as many `)` as `head` opens: an IN list.
    pub(crate) fn and_many(&mut self, head: &str, args: Vec<Arg>) -> &mut Self {
        let mut placeholders = Vec::with_capacity(args.len());
        for a in args {
            self.args.push(a);
            placeholders.push(format!("${}", self.args.len()));
        }
        let close = ")".repeat(head.matches('(').count());
        self.conditions
            .push(format!("{head}{}{close}", placeholders.join(", ")));
        self
    }

    pub(crate) fn sql(&self, head: &str, tail: &str) -> String {
        let mut s = head.to_string();
        if !self.conditions.is_empty() {
            s.push_str(" WHERE ");
            s.push_str(&self.conditions.join(" AND "));
        }
        s.push(' ');
        s.push_str(tail);
        s
    }

    pub(crate) fn bind<'q>(&self, sql: &'q str) -> Query<'q, Any, AnyArguments<'q>> {
        let mut q = sqlx::query(sql);
        for a in &self.args {
            q = match a {
                Arg::Text(t) => q.bind(t.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

/// Splits one extra fetched row off into a `next` cursor.
pub(crate) fn paginate<T>(
    mut items: Vec<T>,
    limit: u32,
    cursor: impl Fn(&T) -> String,
) -> verbund_domain::page::Page<T> {
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(cursor)
    } else {
        None
    };
    verbund_domain::page::Page { items, next }
}

/// `count` placeholders numbered from `first` on, comma-separated, for statements with
/// many parameters (multi-row inserts, long `IN` lists): anonymous `?` for SQLite, `$n`
/// for PostgreSQL. SQLite finds the name of each numbered parameter (`$n`) by a linear
/// scan, and sqlx asks for every one of them, which makes a statement with thousands of
/// `$n` quadratic; anonymous ones have no name to look up. The whole statement must use
/// this form for SQLite, as anonymous parameters are numbered by position.
pub(crate) fn placeholders(dialect: crate::Dialect, first: usize, count: usize) -> String {
    match dialect {
        crate::Dialect::Sqlite => vec!["?"; count].join(", "),
        crate::Dialect::Postgres => (first..first + count)
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
