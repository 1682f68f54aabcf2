//! `raum gateway`: turns join URLs into meetings. It serves the join pages and the web
//! client, relays each participant's signaling WebSocket to the meeting's SFU, and
//! writes the shared access log (time, IP, User-Agent: nothing else).
//!
//! - [`directory`]: the meetings by token, which every request looks up;
//! - [`meetings`]: fills the directory from a reflector on Meeting objects;
//! - [`server`]: the routes; [`pages`], [`i18n`] and [`assets`]: what they serve;
//! - [`client_ip`], [`limiter`]: whose request it is, and how often it may miss;
//! - [`metrics`]: the /metrics exposition.
//!
//! `raum standalone` (crate::standalone) runs the same front end with its directory
//! filled from YAML files and in-process SFU rooms.

pub mod assets;
pub mod client_ip;
pub mod directory;
pub mod i18n;
pub mod limiter;
pub mod meetings;
pub mod metrics;
pub mod pages;
pub mod server;
pub mod summary;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Args as ClapArgs;
use tracing::{info, warn};

use crate::access_log::entry::valid_instance;
use crate::access_log::writer::{self, AccessLog};
use crate::kubeconfig::ClusterArgs;
use crate::public_url::PublicUrl;
use client_ip::TrustedProxies;
pub use directory::{Backend, Directory, Meeting, State};
use pages::PrivacyNotice;
pub use server::Gateway;

/// What `raum gateway` and `raum standalone` share: how the web front end behaves.
#[derive(Debug, ClapArgs)]
pub struct WebArgs {
    /// The directory the access log is written to (shared with the pruning Job).
    #[arg(long, env = "RAUM_ACCESS_LOG_DIR", value_name = "DIR")]
    pub access_log_dir: Option<PathBuf>,

    /// This instance's name in access-log file names (letters, digits, - and _).
    /// Default: the pod name or host name.
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub instance: Option<String>,

    /// Believe X-Forwarded-For only from these proxies (CIDRs or addresses,
    /// comma-separated or repeated). Default: nobody.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// How many days access-log entries are kept, as the privacy notice states it (keep
    /// it equal to the RetentionPolicy's maxAge).
    #[arg(long, default_value_t = 56, value_name = "DAYS")]
    pub retention_days: u32,

    /// A directory with privacy.en.html and/or privacy.de.html: the privacy notice's
    /// own wording (HTML fragments) instead of the built-in one.
    #[arg(long, value_name = "DIR")]
    pub privacy_notice_dir: Option<PathBuf>,

    /// Access-log entries are made durable at least this often.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub flush_interval: Duration,
}

/// Flags of `raum gateway`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// How to reach the API server.
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// The public base URL participants use (as given to the operator); WebSocket
    /// connections from pages of any other origin are refused.
    #[arg(long, env = "RAUM_PUBLIC_URL", value_name = "URL")]
    pub public_url: PublicUrl,

    /// Where the gateway listens.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Watch Meetings in this namespace only; repeat for several. Default: all.
    #[arg(long = "namespace", value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,

    /// Publish a summary of the access log (per day: entries, oldest and newest time;
    /// lines with other fields than the three) into this ConfigMap, NAMESPACE/NAME,
    /// for the operator's metrics and `kubectl raum check`. Default: none.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub access_log_summary: Option<summary::Target>,

    /// How often the summary is taken and published.
    #[arg(long, default_value = "30s", value_parser = summary::interval)]
    pub access_log_summary_interval: Duration,

    /// The web front end.
    #[command(flatten)]
    pub web: WebArgs,
}

/// Where `raum gateway` writes the access log unless told otherwise.
pub const DEFAULT_ACCESS_LOG_DIR: &str = "/var/lib/raum/access-log";
/// Most access-log entries held while the disk refuses writes.
const MAX_BUFFERED: usize = 100_000;
/// How long open WebSockets get to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(1);

/// Why the gateway cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A trusted proxy does not parse.
    #[error("--trusted-proxy: {0}")]
    TrustedProxy(#[from] client_ip::BadProxy),
    /// The instance name cannot be part of a file name.
    #[error("instance name {0:?} must be letters, digits, - and _ (set --instance)")]
    Instance(String),
    /// The privacy notice files cannot be read.
    #[error("--privacy-notice-dir: {0}")]
    PrivacyNotice(std::io::Error),
    /// The kubeconfig is unusable.
    #[error(transparent)]
    Kubeconfig(#[from] crate::kubeconfig::Error),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

fn instance_name(given: Option<&str>) -> Result<String, Error> {
    let name = match given {
        Some(n) => n.to_owned(),
        None => crate::host::name().unwrap_or_else(|| "gateway".to_owned()),
    };
    if valid_instance(&name) {
        Ok(name)
    } else {
        Err(Error::Instance(name))
    }
}

/// The front end, ready to serve: its state and the access-log writer's stop handle.
pub struct Front {
    /// What requests share.
    pub gateway: Arc<Gateway>,
    /// Flushes and stops the access-log writer.
    pub log_shutdown: writer::Shutdown,
}

/// Builds the front end from its flags. Must run inside the Tokio runtime (it starts
/// the access-log writer).
pub fn front(
    web: &WebArgs,
    default_log_dir: &Path,
    origins: Vec<String>,
    directory: Arc<Directory>,
) -> Result<Front, Error> {
    let trusted_proxies: TrustedProxies = web.trusted_proxies.join(",").parse()?;
    let instance = instance_name(web.instance.as_deref())?;
    let privacy = PrivacyNotice::load(web.retention_days, web.privacy_notice_dir.as_deref())
        .map_err(Error::PrivacyNotice)?;
    let dir: PathBuf = web
        .access_log_dir
        .clone()
        .unwrap_or_else(|| default_log_dir.to_owned());
    if let Err(e) = std::fs::create_dir_all(&dir) {
        // Keep serving: the writer holds entries and retries (and says so).
        warn!(error = %e.kind(), dir = %dir.display(), "the access-log directory cannot be created");
    }
    let (access_log, log_shutdown) = AccessLog::spawn(writer::Config {
        dir,
        instance,
        flush_interval: web.flush_interval,
        max_buffered: MAX_BUFFERED,
    });
    let gateway = Arc::new(Gateway {
        directory,
        access_log,
        trusted_proxies,
        privacy,
        misses: Default::default(),
        metrics: Default::default(),
        origins,
        ready: AtomicBool::new(false),
    });
    Ok(Front {
        gateway,
        log_shutdown,
    })
}

/// Binds `addr`.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })
}

/// Serves the front end on `listener` until `stop` resolves, gives open connections a
/// moment, then flushes the access log.
pub async fn serve(
    listener: tokio::net::TcpListener,
    front: Front,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let app =
        server::router(front.gateway.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                stop.await;
                let _ = stopped_tx.send(());
            })
            .await;
    });
    let _ = stopped_rx.await;
    // WebSockets outlive a graceful shutdown; wait a moment for them, then go on (they
    // end when the process exits).
    let _ = tokio::time::timeout(DRAIN, server).await;
    front.log_shutdown.run().await;
}

/// Runs `raum gateway` until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> Result<(), Error> {
    // Flags first, so a typo is reported before anything about the cluster.
    let directory = Arc::new(Directory::default());
    let front = front(
        &args.web,
        Path::new(DEFAULT_ACCESS_LOG_DIR),
        vec![args.public_url.origin().to_owned()],
        directory,
    )?;
    let client = args.cluster.client().await?;
    let listener = bind(args.listen).await?;
    let local = listener.local_addr().unwrap_or(args.listen);
    info!(listen = %local, "gateway listening");
    let summary = args.access_log_summary.clone().map(|target| {
        let dir = args
            .web
            .access_log_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ACCESS_LOG_DIR));
        tokio::spawn(summary::run(
            client.clone(),
            target,
            dir,
            args.access_log_summary_interval,
            args.public_url.as_str().to_owned(),
        ))
    });
    let watch = tokio::spawn(meetings::run(
        client,
        args.namespaces.clone(),
        front.gateway.clone(),
    ));
    serve(listener, front, crate::shutdown::signal()).await;
    watch.abort();
    if let Some(s) = summary {
        s.abort();
    }
    info!("gateway stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn before_the_meetings_are_loaded_lookups_say_try_again_not_not_found() {
        let logs = tempfile::tempdir().unwrap();
        let web = WebArgs {
            access_log_dir: Some(logs.path().to_owned()),
            instance: Some("t".into()),
            trusted_proxies: vec![],
            retention_days: 56,
            privacy_notice_dir: None,
            flush_interval: Duration::from_millis(50),
        };
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let f = front(
            &web,
            logs.path(),
            vec![format!("http://{addr}")],
            Default::default(),
        )
        .unwrap();
        let gateway = f.gateway.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, f, async move {
            let _ = stop_rx.await;
        }));
        let token = "A".repeat(43);
        let r = get(addr, &format!("/j/{token}")).await;
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.contains("One moment, please"), "{r}");
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert_eq!(gateway.misses.tracked(), 0, "nobody was charged a miss");
        gateway
            .ready
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let r = get(addr, &format!("/j/{token}")).await;
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
        assert_eq!(gateway.misses.tracked(), 1);
        let _ = stop_tx.send(());
        server.await.unwrap();
    }
}
