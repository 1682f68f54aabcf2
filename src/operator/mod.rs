//! `raum operator`: leader election, the controllers, and the metrics/health server.
//!
//! Both replicas serve `/healthz` and `/metrics`; only the one holding the Lease
//! reconciles. A replica that loses the Lease stops reconciling and exits, so that it
//! restarts as a clean standby rather than acting on stale state.

pub mod join_token;
pub mod meeting;
pub mod metrics;
pub mod names;
pub mod pod_security;
pub mod retention;
pub mod sfu_status;

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use jiff::SignedDuration;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::{error, info, warn};

use self::join_token::TokenKey;
use self::meeting::lifecycle::Timing;
use self::meeting::objects::SfuSettings;
use self::metrics::{Metrics, Readiness};
use self::sfu_status::SfuStatusClient;
use crate::api::{Meeting, RetentionPolicy};
use crate::cli::OperatorArgs;

/// The Lease the replicas compete for, in the operator's namespace.
pub const LEASE_NAME: &str = "raum-operator";
/// Seconds a leader's Lease lasts without renewal.
const LEASE_SECONDS: u64 = 15;
/// Seconds before expiry the leader renews.
const LEASE_GRACE_SECONDS: u64 = 5;
/// How long controllers get to stop after SIGTERM or a lost Lease.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable kubeconfig.
    #[error(transparent)]
    Kubeconfig(#[from] crate::kubeconfig::Error),
    /// The client could not be built from the configuration.
    #[error("cannot create a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The flags do not make sense together.
    #[error("{0}")]
    Flags(String),
    /// The metrics address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Leader election failed.
    #[error("leader election on Lease {namespace}/{LEASE_NAME} failed: {source}")]
    Lease {
        /// The Lease's namespace.
        namespace: String,
        /// Why.
        source: kube_lease_manager::LeaseManagerError,
    },
    /// The join-URL key is not available.
    #[error(transparent)]
    Token(#[from] join_token::Error),
    /// Another replica took over.
    #[error("lost leadership of Lease {0}/{LEASE_NAME}; exiting to restart as standby")]
    LostLeadership(String),
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(args: OperatorArgs) -> Result<(), Error> {
    let public_url = args.public_url.trim_end_matches('/').to_owned();
    if !(public_url.starts_with("https://") || public_url.starts_with("http://")) {
        return Err(Error::Flags(format!(
            "--public-url {:?} must be an http:// or https:// URL",
            args.public_url
        )));
    }
    let config = crate::kubeconfig::load(args.cluster.kubeconfig.as_deref()).await?;
    let client = kube::Client::try_from(config).map_err(Error::Client)?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        crate::shutdown::signal().await;
        info!("shutting down");
        let _ = shutdown_tx.send(true);
    });

    let metrics = Arc::new(Metrics::default());
    let ready = Readiness::default();
    let (addr, server) = metrics::serve(
        args.metrics_addr,
        metrics.clone(),
        ready.clone(),
        wait_for(shutdown_rx.clone()),
    )
    .await
    .map_err(|source| Error::Listen {
        addr: args.metrics_addr,
        source,
    })?;
    info!(%addr, "serving /metrics, /healthz and /readyz");
    let server = tokio::spawn(server);

    // Leader election: wait for the Lease (or shutdown) before doing anything else.
    let namespace = args.operator_namespace.clone();
    let lease_err = |source| Error::Lease {
        namespace: namespace.clone(),
        source,
    };
    let lease = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
        .with_namespace(&namespace)
        .with_identity(&identity)
        .with_field_manager(format!("raum-operator-{identity}"))
        .with_duration(LEASE_SECONDS)
        .with_grace(LEASE_GRACE_SECONDS)
        .build()
        .await
        .map_err(lease_err)?;
    let (mut leading, lease_task) = lease.watch().await;
    ready.set(true);
    info!(identity = %identity, "waiting to lead");
    let mut shutdown = shutdown_rx.clone();
    loop {
        if *leading.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { break },
            _ = shutdown.changed() => {
                drop(leading);
                release(lease_task).await;
                let _ = server.await;
                return Ok(());
            }
        }
    }
    info!(identity = %identity, "leading");
    metrics.set_leader(true);

    // Stop reconciling on shutdown or when the Lease is lost.
    let (stop_tx, stop_rx) = watch::channel(false);
    let lost = Arc::new(Mutex::new(false));
    {
        let mut shutdown = shutdown_rx.clone();
        let mut leading = leading.clone();
        let lost = lost.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.changed() => break,
                    changed = leading.changed() => {
                        if changed.is_err() || !*leading.borrow_and_update() {
                            *lost.lock().expect("not poisoned") = true;
                            break;
                        }
                    }
                }
            }
            let _ = stop_tx.send(true);
        });
    }

    let tokens = TokenKey::load_or_create(client.clone(), &namespace, &args.url_key_secret).await?;
    let ctx = Arc::new(meeting::Context {
        client: client.clone(),
        settings: meeting::Settings {
            public_url,
            timing: Timing {
                warm_up: SignedDuration::try_from(args.warm_up).unwrap_or(SignedDuration::MAX),
                default_length: SignedDuration::try_from(args.default_length)
                    .unwrap_or(SignedDuration::MAX),
            },
            sfu: SfuSettings {
                image: args.image.clone(),
                media_exposure: args.media_exposure,
                advertise_ips: args.advertise_ips.clone(),
                network_policy_from: args
                    .network_policies
                    .then(|| args.operator_namespace.clone()),
            },
        },
        tokens,
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "raum-operator".into(),
                instance: Some(identity.clone()),
            },
        ),
        metrics: metrics.clone(),
        sfu_status: SfuStatusClient::default(),
        created: Default::default(),
        announced: Default::default(),
    });

    let retention_ctx = Arc::new(retention::Context {
        client: client.clone(),
        image: args.image.clone(),
        recorder: ctx.recorder.clone(),
        metrics: metrics.clone(),
    });

    // One controller per kind and watched namespace (or one per kind for all).
    let scopes: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().cloned().map(Some).collect()
    };
    let retention_controllers = scopes.clone().into_iter().map(|ns| {
        let (policies, cron_jobs): (Api<RetentionPolicy>, Api<CronJob>) = match &ns {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=raum-operator");
        Controller::new(policies, watcher::Config::default().any_semantic())
            .owns(cron_jobs, owned)
            .graceful_shutdown_on(wait_for(stop_rx.clone()))
            .run(
                retention::reconcile,
                retention::error_policy,
                retention_ctx.clone(),
            )
            .for_each(|res| report("retentionpolicy", res))
    });
    let retention_all = futures::future::join_all(retention_controllers);
    let controllers = scopes.into_iter().map(|ns| {
        let (meetings, pods, services): (Api<Meeting>, Api<Pod>, Api<Service>) = match &ns {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
        };
        let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=raum-operator");
        let controller = Controller::new(meetings, watcher::Config::default().any_semantic())
            .owns(pods, owned.clone())
            .owns(services, owned)
            .graceful_shutdown_on(wait_for(stop_rx.clone()));
        metrics.watch_meetings(controller.store());
        controller
            .run(meeting::reconcile, meeting::error_policy, ctx.clone())
            .for_each(|res| report("meeting", res))
    });
    let all = futures::future::join(futures::future::join_all(controllers), retention_all);
    // A controller whose watch keeps failing (say, a permission taken away) may not
    // notice the graceful shutdown; after the stop signal they get a few seconds.
    let mut stopped = stop_rx.clone();
    tokio::select! {
        _ = all => {}
        _ = async {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(STOP_GRACE).await;
        } => warn!("controllers did not stop within {STOP_GRACE:?}; leaving anyway"),
    }
    metrics.set_leader(false);

    let lost_leadership = *lost.lock().expect("not poisoned");
    drop(leading);
    release(lease_task).await;
    let _ = server.await;
    if lost_leadership {
        return Err(Error::LostLeadership(namespace));
    }
    Ok(())
}

/// Logs what a controller stream yields besides successes. Reconcile errors are
/// logged by each controller's error policy; these are watch and queue errors.
async fn report<K: kube::Resource, E: std::error::Error + 'static>(
    controller: &'static str,
    res: Result<
        (
            kube::runtime::reflector::ObjectRef<K>,
            kube::runtime::controller::Action,
        ),
        kube::runtime::controller::Error<E, watcher::Error>,
    >,
) {
    match res {
        Ok(_) | Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
        Err(other) => warn!(controller, error = %other, "controller"),
    }
}

/// Ends the lease manager's task and gives the Lease up, so a standby takes over at
/// once rather than after the Lease expires.
async fn release(
    task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
) {
    match task.await {
        Ok(Ok(manager)) => {
            if let Err(e) = manager.release().await {
                warn!(error = %e, "cannot release the Lease; the standby takes over when it expires");
            }
        }
        Ok(Err(e)) => warn!(error = %e, "leader election ended with an error"),
        Err(e) => error!(error = %e, "leader election task panicked"),
    }
}

/// Resolves once `rx` turns true.
async fn wait_for(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}
