//! `raum operator`: leader election, the controllers, and the metrics/health server.
//!
//! Both replicas serve `/healthz` and `/metrics`; only the one holding the Lease
//! reconciles. A replica that loses the Lease stops reconciling and exits, so that it
//! restarts as a clean standby rather than acting on stale state.

pub mod backoff;
pub mod meeting;
pub mod metrics;
pub mod names;
pub mod pod_security;
pub mod retention;
pub mod sfu_status;
pub mod url_key;

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use jiff::SignedDuration;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::{error, info, warn};

use self::meeting::objects::{MediaExposure, SfuSettings};
use self::metrics::{Metrics, Readiness};
use self::names::OPERATOR;
use self::sfu_status::SfuStatusClient;
use crate::api::{Meeting, RetentionPolicy};
use crate::kubeconfig::ClusterArgs;
use crate::public_url::PublicUrl;
use crate::schedule::Timing;

/// Flags of `raum operator`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How to reach the API server.
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// The gateway's public base URL; join URLs are this plus `/j/<token>`.
    #[arg(long, env = "RAUM_PUBLIC_URL", value_name = "URL")]
    pub public_url: PublicUrl,

    /// Watch Meetings in this namespace only; repeat for several. Default: all.
    #[arg(long = "namespace", value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,

    /// The raum image, run by the SFU pods (`raum sfu`) and the pruning Jobs
    /// (`raum prune`).
    #[arg(long, env = "RAUM_IMAGE", default_value = concat!("ghcr.io/raum-dev/raum:", env!("CARGO_PKG_VERSION")))]
    pub image: String,

    /// How long before a meeting's start its SFU pod is created.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub warm_up: std::time::Duration,

    /// How long a meeting with neither endsAt nor duration lasts.
    #[arg(long, default_value = "8h", value_parser = humantime::parse_duration)]
    pub default_length: std::time::Duration,

    /// How the SFU's UDP media port is exposed.
    #[arg(long, value_enum, default_value = "nodePort")]
    pub media_exposure: MediaExposure,

    /// The IP address the SFU advertises in its ICE candidates (a load balancer's or a
    /// node's public address); repeat for several. Default: the IP of the node the SFU
    /// pod runs on.
    #[arg(long = "advertise-ip", value_name = "IP")]
    pub advertise_ips: Vec<std::net::IpAddr>,

    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    pub metrics_addr: std::net::SocketAddr,

    /// Give each SFU pod a NetworkPolicy: signaling only from the gateway and operator
    /// pods of the operator's namespace, media from anywhere.
    #[arg(long)]
    pub network_policies: bool,

    /// With --network-policies: pods of this namespace (Prometheus') may also reach the
    /// SFU pods' signaling port, where /metrics is served. Repeatable.
    #[arg(long = "metrics-from", value_name = "NAMESPACE")]
    pub metrics_from: Vec<String>,

    /// The operator's own namespace: it holds the leader-election Lease and the
    /// Secret with the join-URL key.
    #[arg(long, env = "POD_NAMESPACE", default_value = "raum-system")]
    pub operator_namespace: String,

    /// This replica's name in leader election and events.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// The Secret (in the operator's namespace) holding the key join tokens are derived
    /// from. Created with a random key if missing. Changing the key changes every URL.
    #[arg(long, default_value = "raum-url-key")]
    pub url_key_secret: String,

    /// A TURN server participants are offered (`turn:turn.example.org:3478?transport=udp`,
    /// `turns:turn.example.org:443?transport=tcp`, ...); repeatable. Each meeting's SFU
    /// gets a key of its own, derived from the TURN secret, in a Secret
    /// `raum-<meeting>-turn` owned by the Meeting.
    #[arg(long = "turn-url", value_name = "URL")]
    pub turn_urls: Vec<String>,

    /// The Secret (in the operator's namespace) holding the TURN server's secret, which
    /// `raum turn` reads too. Created with a random secret if missing; read only with
    /// --turn-url.
    #[arg(long, default_value = "raum-turn-key")]
    pub turn_key_secret: String,
}

/// The Lease the replicas compete for, in the operator's namespace.
pub const LEASE_NAME: &str = OPERATOR;
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
    Token(#[from] url_key::Error),
    /// A TURN URL is not one.
    #[error("--turn-url {0:?} is not a turn: or turns: URL with a host and port")]
    BadTurnUrl(String),
    /// Another replica took over.
    #[error("lost leadership of Lease {0}/{LEASE_NAME}; exiting to restart as standby")]
    LostLeadership(String),
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> Result<(), Error> {
    // Browsers reject a whole configuration for one bad URL: refuse it here, before
    // any meeting's participants would lose their media to it.
    if let Some(bad) = args
        .turn_urls
        .iter()
        .find(|u| !crate::rooms::valid_turn_url(u))
    {
        return Err(Error::BadTurnUrl(bad.clone()));
    }
    let client = args.cluster.client().await?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            crate::host::name().unwrap_or_default(),
            std::process::id()
        )
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
        .with_field_manager(format!("{OPERATOR}-{identity}"))
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

    let tokens = url_key::load_or_create(client.clone(), &namespace, &args.url_key_secret).await?;
    let turn = if args.turn_urls.is_empty() {
        None
    } else {
        Some(meeting::objects::TurnSettings {
            urls: args.turn_urls.clone(),
            secret: url_key::load_or_create_turn(client.clone(), &namespace, &args.turn_key_secret)
                .await?,
        })
    };
    let ctx = Arc::new(meeting::Context {
        client: client.clone(),
        settings: meeting::Settings {
            public_url: args.public_url.clone(),
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
                metrics_from: args.metrics_from.clone(),
                turn,
            },
        },
        tokens,
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: OPERATOR.into(),
                instance: Some(identity.clone()),
            },
        ),
        metrics: metrics.clone(),
        memory: Default::default(),
        failures: Default::default(),
    });

    let retention_ctx = Arc::new(retention::Context {
        client: client.clone(),
        image: args.image.clone(),
        recorder: ctx.recorder.clone(),
        metrics: metrics.clone(),
        failures: Default::default(),
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
        let owned = watcher::Config::default().labels(&names::managed_selector());
        let controller = Controller::new(policies, watcher::Config::default().any_semantic())
            .owns(cron_jobs, owned)
            .graceful_shutdown_on(wait_for(stop_rx.clone()));
        metrics.watch_policies(controller.store());
        controller
            .run(
                retention::reconcile,
                retention::error_policy,
                retention_ctx.clone(),
            )
            .for_each(|res| report("retentionpolicy", res))
    });
    let retention_all = futures::future::join_all(retention_controllers);
    let mut stores = Vec::new();
    let controllers: Vec<_> = scopes
        .into_iter()
        .map(|ns| {
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
            let owned = watcher::Config::default().labels(&names::managed_selector());
            let controller = Controller::new(meetings, watcher::Config::default().any_semantic())
                .owns(pods, owned.clone())
                .owns(services, owned)
                .graceful_shutdown_on(wait_for(stop_rx.clone()));
            metrics.watch_meetings(controller.store());
            stores.push(controller.store());
            controller
                .run(meeting::reconcile, meeting::error_policy, ctx.clone())
                .for_each(|res| report("meeting", res))
        })
        .collect();
    // The access log's summary, as the gateway publishes it, for the retention metrics.
    let summary_poller = {
        let (metrics, mut stop) = (metrics.clone(), stop_rx.clone());
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &args.operator_namespace);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let summary = match api.get_opt(crate::access_log::summary::CONFIG_MAP).await {
                    Ok(cm) => cm
                        .as_ref()
                        .and_then(crate::access_log::summary::from_config_map),
                    Err(e) => {
                        warn!(error = %e, "cannot read the access log's summary");
                        None
                    }
                };
                metrics.set_access_log_summary(summary);
            }
        })
    };
    let poller = tokio::spawn(meeting::participants::run(
        client.clone(),
        stores.clone(),
        SfuStatusClient::default(),
        stop_rx.clone(),
    ));
    let sweeper = {
        let (ctx, mut stop) = (ctx.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(meeting::SWEEP_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => meeting::forget_deleted(&ctx, &stores),
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    };
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
    poller.abort();
    sweeper.abort();
    summary_poller.abort();

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
