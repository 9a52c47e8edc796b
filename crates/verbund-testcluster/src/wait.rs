//! Waits for tests: poll a condition until it holds or a timeout passes, and the typed
//! waits that Kubernetes tests keep needing (a namespace gone, a Deployment ready, a
//! namespace's default ServiceAccount there).

use std::future::Future;
use std::panic::Location;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{Api, Client};

use crate::{Error, Result};

/// How often a wait asks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Polls `check` every [`POLL_INTERVAL`] until it returns `true`; fails with
/// [`Error::Timeout`] (naming the caller's file and line) once `timeout` has passed.
#[track_caller]
pub fn wait_for<F, Fut>(check: F, timeout: Duration) -> impl Future<Output = Result<()>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let location = Location::caller();
    let mut check = check;
    async move {
        poll_named(location.to_string(), timeout, move || {
            let answer = check();
            async move { answer.await.then_some(()) }
        })
        .await
    }
}

/// Polls `check` every [`POLL_INTERVAL`] until it returns `Some(value)`, and returns the
/// value; fails with [`Error::Timeout`] (naming the caller's file and line) once `timeout`
/// has passed.
#[track_caller]
pub fn wait_for_value<T, F, Fut>(check: F, timeout: Duration) -> impl Future<Output = Result<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let location = Location::caller();
    poll_named(location.to_string(), timeout, check)
}

pub(crate) async fn poll_named<T, F, Fut>(
    what: String,
    timeout: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if started.elapsed() >= timeout {
            return Err(Error::Timeout {
                what,
                after: timeout,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until the namespace `name` no longer exists (its finalization has finished).
pub async fn wait_for_namespace_gone(client: &Client, name: &str, timeout: Duration) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    poll_named(
        format!("namespace `{name}` to be gone"),
        timeout,
        || async { matches!(namespaces.get_opt(name).await, Ok(None)).then_some(()) },
    )
    .await
}

/// Waits until the Deployment has `replicas` ready replicas, all of them of its current
/// generation, and returns it.
pub async fn wait_for_deployment_ready(
    client: &Client,
    namespace: &str,
    name: &str,
    replicas: i32,
    timeout: Duration,
) -> Result<Deployment> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    poll_named(
        format!("deployment `{namespace}/{name}` to have {replicas} ready replicas"),
        timeout,
        || async {
            let deployment = deployments.get_opt(name).await.ok()??;
            let status = deployment.status.as_ref()?;
            let observed = status.observed_generation >= deployment.metadata.generation;
            let ready = status.ready_replicas.unwrap_or(0) == replicas
                && status.updated_replicas.unwrap_or(0) == replicas
                && status.replicas.unwrap_or(0) == replicas;
            (observed && ready).then_some(deployment)
        },
    )
    .await
}

/// Waits until the controller-manager has made the namespace's `default` ServiceAccount:
/// before that, the ServiceAccount admission plugin refuses pods.
pub async fn wait_for_default_service_account(
    client: &Client,
    namespace: &str,
    timeout: Duration,
) -> Result<()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    poll_named(
        format!("serviceaccount `{namespace}/default`"),
        timeout,
        || async { matches!(accounts.get_opt("default").await, Ok(Some(_))).then_some(()) },
    )
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn wait_for_returns_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        wait_for(
            || async { calls.fetch_add(1, Ordering::SeqCst) >= 2 },
            Duration::from_secs(5),
        )
        .await
        .expect("the third call says yes");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_timeout_names_the_caller() {
        let err = wait_for(|| async { false }, Duration::from_millis(50))
            .await
            .expect_err("never true");
        let message = err.to_string();
        assert!(message.contains("src/wait.rs"), "{message}");
    }

    #[tokio::test]
    async fn wait_for_value_hands_back_the_value() {
        let value = wait_for_value(|| async { Some(7) }, Duration::from_secs(1))
            .await
            .expect("at once");
        assert_eq!(value, 7);
    }
}
