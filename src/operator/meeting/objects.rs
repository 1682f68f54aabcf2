//! The objects a running meeting needs, built as pure functions of the Meeting and the
//! operator's settings: its SFU pod, its Service, its NetworkPolicy and, with TURN,
//! the Secret with its TURN key. Nothing here talks to the API
//! server, so every property is unit-tested.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, Pod,
    PodSpec, Probe, ResourceRequirements, Secret, SecretKeySelector, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use crate::api::Meeting;
use crate::operator::names::{OPERATOR, managed_labels};
use crate::operator::pod_security;
use crate::rooms::RoomSettings;
use crate::rooms::contract::{self, Advertise, EnvValue, Launch, LaunchTurn};
use crate::token::token_digest;
use crate::turn_credentials::TurnSecret;

/// The SFU's HTTP port: WebSocket signaling, health, status and metrics.
pub const SIGNALING_PORT: i32 = contract::SIGNALING_PORT as i32;
/// The SFU's one UDP port for every participant's media.
pub const MEDIA_PORT: i32 = contract::MEDIA_PORT as i32;
/// Name of the signaling port in the pod and the Service.
pub const SIGNALING_PORT_NAME: &str = "signaling";
/// Name of the media port in the pod and the Service.
pub const MEDIA_PORT_NAME: &str = "media";
/// The SFU's ICE-TCP port (the same number as the media port, on TCP).
pub const MEDIA_TCP_PORT: i32 = contract::MEDIA_TCP_PORT as i32;
/// Name of the ICE-TCP port in the pod and the Service.
pub const MEDIA_TCP_PORT_NAME: &str = "media-tcp";
/// The label every object of a meeting carries, with the meeting's name.
pub const MEETING_LABEL: &str = "raum.dev/meeting";
/// Seconds the SFU gets to tell participants the meeting ended before it is killed.
pub const TERMINATION_GRACE_SECONDS: i64 = 5;

/// How the SFU's UDP media port is reachable from participants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "camelCase")]
pub enum MediaExposure {
    /// A NodePort Service: the SFU advertises the node's (or the given) IP and the
    /// allocated node port.
    NodePort,
    /// A ClusterIP Service only: media reaches the SFU through a TURN relay or, in
    /// tests, directly.
    #[value(name = "clusterIP")]
    ClusterIp,
}

/// What the operator's settings contribute to the SFU's objects.
#[derive(Clone, Debug)]
pub struct SfuSettings {
    /// The raum image.
    pub image: String,
    /// How the media port is exposed.
    pub media_exposure: MediaExposure,
    /// Addresses to advertise in ICE candidates; empty means the node's IP.
    pub advertise_ips: Vec<IpAddr>,
    /// Fence each SFU pod with a NetworkPolicy admitting signaling only from the
    /// gateway and operator pods of this namespace (media from anywhere). `None`: no
    /// NetworkPolicies.
    pub network_policy_from: Option<String>,
    /// Namespaces whose pods may scrape the SFU's /metrics through that NetworkPolicy
    /// (Prometheus'): they reach the signaling port, where /metrics is served.
    pub metrics_from: Vec<String>,
    /// TURN for participants, when the cluster runs `raum turn`.
    pub turn: Option<TurnSettings>,
}

/// The TURN server participants are offered, and the secret meeting keys derive from.
#[derive(Clone, Debug)]
pub struct TurnSettings {
    /// Its `turn:` and `turns:` URLs.
    pub urls: Vec<String>,
    /// The TURN server's secret (never leaves the operator: SFUs get meeting keys).
    pub secret: TurnSecret,
}

/// The name of a meeting's host-link Secret: the SFU's name plus `-host`.
pub fn host_secret_name(meeting: &str) -> String {
    format!("{}-host", sfu_name(meeting))
}

/// The key in the host-link Secret that holds the link.
pub const HOST_URL_KEY: &str = "url";

/// The Secret with the meeting's host link (`url`), which RBAC on Secrets keeps from
/// those who may only read Meetings. Immutable, created once: the link follows from
/// the Meeting's UID, so one that exists is right. Owned by the Meeting.
pub fn host_secret(meeting: &Meeting, host_url: &str) -> Secret {
    let mut meta = metadata(meeting);
    meta.name = Some(host_secret_name(&meeting.name_any()));
    Secret {
        metadata: meta,
        immutable: Some(true),
        string_data: None,
        data: Some(BTreeMap::from([(
            HOST_URL_KEY.to_owned(),
            ByteString(host_url.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

/// The name of a meeting's TURN key Secret: the SFU's name plus `-turn`.
pub fn turn_secret_name(meeting: &str) -> String {
    format!("{}-turn", sfu_name(meeting))
}

/// The Secret holding the meeting's TURN key (derived from the TURN secret and the
/// Meeting's UID), which the SFU pod reads into its environment. Immutable: the key of
/// a UID never changes, so a second create's conflict means it is already right.
/// Owned by the Meeting, so it goes with it. `None` without TURN or without a UID.
pub fn turn_secret(meeting: &Meeting, settings: &SfuSettings) -> Option<Secret> {
    let turn = settings.turn.as_ref()?;
    let uid = meeting.uid()?;
    let mut meta = metadata(meeting);
    meta.name = Some(turn_secret_name(&meeting.name_any()));
    Some(Secret {
        metadata: meta,
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            contract::TURN_SECRET_KEY.to_owned(),
            ByteString(turn.secret.meeting_key(&uid).into_bytes()),
        )])),
        ..Default::default()
    })
}

/// The name of a meeting's SFU pod and Service: `raum-<meeting>` as a DNS label.
pub fn sfu_name(meeting: &str) -> String {
    crate::operator::names::child_name("raum", meeting, 63)
}

/// Labels of a meeting's SFU pod and Service.
pub fn labels(meeting: &str) -> BTreeMap<String, String> {
    let mut labels = managed_labels();
    labels.extend([
        ("app.kubernetes.io/name".to_owned(), "raum-sfu".to_owned()),
        (
            "app.kubernetes.io/instance".to_owned(),
            label_value(meeting),
        ),
        (MEETING_LABEL.to_owned(), label_value(meeting)),
    ]);
    labels
}

/// A label value is at most 63 characters; longer meeting names get the same treatment
/// as [`sfu_name`], minus the prefix.
fn label_value(meeting: &str) -> String {
    if meeting.len() <= 63 {
        meeting.to_owned()
    } else {
        sfu_name(meeting).trim_start_matches("raum-").to_owned()
    }
}

fn metadata(meeting: &Meeting) -> ObjectMeta {
    let name = meeting.name_any();
    ObjectMeta {
        name: Some(sfu_name(&name)),
        namespace: meeting.namespace(),
        labels: Some(labels(&name)),
        owner_references: meeting.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

/// The meeting's Service: signaling (TCP) for the gateway, the one media port (UDP)
/// and the ICE-TCP port for participants whose network blocks UDP.
pub fn service(meeting: &Meeting, settings: &SfuSettings) -> Service {
    let port = |name: &str, protocol: &str, port: i32| ServicePort {
        name: Some(name.to_owned()),
        protocol: Some(protocol.to_owned()),
        port,
        target_port: Some(IntOrString::String(name.to_owned())),
        ..Default::default()
    };
    let (type_, external_traffic_policy) = match settings.media_exposure {
        // Local: media must reach the node the SFU runs on without being re-NATed,
        // since ICE checks the addresses it sees.
        MediaExposure::NodePort => ("NodePort", Some("Local".to_owned())),
        MediaExposure::ClusterIp => ("ClusterIP", None),
    };
    Service {
        metadata: metadata(meeting),
        spec: Some(ServiceSpec {
            type_: Some(type_.to_owned()),
            external_traffic_policy,
            selector: Some(labels(&meeting.name_any())),
            ports: Some(vec![
                port(SIGNALING_PORT_NAME, "TCP", SIGNALING_PORT),
                port(MEDIA_PORT_NAME, "UDP", MEDIA_PORT),
                port(MEDIA_TCP_PORT_NAME, "TCP", MEDIA_TCP_PORT),
            ]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The SFU pod's NetworkPolicy: signaling (TCP 8080) only from raum's gateway and
/// operator pods in the operator's namespace `from`; media (UDP 50000, and ICE-TCP on
/// TCP 50000) from anywhere,
/// since participants are anywhere; nothing else in. Egress stays open: the SFU
/// answers participants wherever they are.
pub fn network_policy(meeting: &Meeting, from: &str, scrapers: &[String]) -> NetworkPolicy {
    let raum_pods = |name: &str| NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                from.to_owned(),
            )])),
            ..Default::default()
        }),
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_owned(),
                name.to_owned(),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let port = |protocol: &str, port: i32| NetworkPolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(port)),
        ..Default::default()
    };
    NetworkPolicy {
        metadata: metadata(meeting),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels(&meeting.name_any())),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: Some(
                        [raum_pods("raum-gateway"), raum_pods(OPERATOR)]
                            .into_iter()
                            .chain(scrapers.iter().map(|ns| NetworkPolicyPeer {
                                namespace_selector: Some(LabelSelector {
                                    match_labels: Some(BTreeMap::from([(
                                        "kubernetes.io/metadata.name".to_owned(),
                                        ns.clone(),
                                    )])),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }))
                            .collect(),
                    ),
                    ports: Some(vec![port("TCP", SIGNALING_PORT)]),
                },
                NetworkPolicyIngressRule {
                    from: None,
                    ports: Some(vec![port("UDP", MEDIA_PORT), port("TCP", MEDIA_TCP_PORT)]),
                },
            ]),
            ..Default::default()
        }),
    }
}

/// The media ports participants reach (what the SFU advertises in its candidates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaPorts {
    /// The UDP port.
    pub udp: u16,
    /// The ICE-TCP port.
    pub tcp: u16,
}

/// The media ports participants reach, read back from the applied Service: the
/// allocated node ports with `nodePort` exposure (UDP and TCP get one each), the
/// service ports otherwise. `None` until both exist.
pub fn advertised_media_ports(service: &Service) -> Option<MediaPorts> {
    let spec = service.spec.as_ref()?;
    let ports = spec.ports.as_ref()?;
    let reachable = |name: &str| {
        let port = ports.iter().find(|p| p.name.as_deref() == Some(name))?;
        let port = match spec.type_.as_deref() {
            Some("NodePort") | Some("LoadBalancer") => port.node_port?,
            _ => port.port,
        };
        u16::try_from(port).ok()
    };
    Some(MediaPorts {
        udp: reachable(MEDIA_PORT_NAME)?,
        tcp: reachable(MEDIA_TCP_PORT_NAME)?,
    })
}

fn default_resources() -> ResourceRequirements {
    let q = |s: &str| Quantity(s.to_owned());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), q("100m")),
            ("memory".to_owned(), q("64Mi")),
        ])),
        limits: Some(BTreeMap::from([("memory".to_owned(), q("512Mi"))])),
        ..Default::default()
    }
}

/// The meeting's SFU pod. No volumes of any kind and no service-account token: nothing
/// said or shown can be written to disk; it passes the `restricted` Pod Security
/// Standard; `restartPolicy: Never`, because a failed SFU is replaced by the operator
/// with a fresh pod, never restarted with state.
pub fn pod(
    meeting: &Meeting,
    settings: &SfuSettings,
    (token, host_token): (&str, &str),
    media: MediaPorts,
) -> Pod {
    let spec = &meeting.spec;
    let launch = Launch {
        settings: RoomSettings::from_spec(spec),
        advertise: if settings.advertise_ips.is_empty() {
            Advertise::NodeIp
        } else {
            Advertise::Ips(settings.advertise_ips.clone())
        },
        advertise_port: media.udp,
        advertise_tcp_port: media.tcp,
        token_sha256: token_digest(token),
        host_token_sha256: token_digest(host_token),
        turn: settings
            .turn
            .as_ref()
            .zip(meeting.uid())
            .map(|(turn, uid)| LaunchTurn {
                urls: turn.urls.clone(),
                key_id: uid,
                secret_name: turn_secret_name(&meeting.name_any()),
            }),
    };
    let args = launch.args();
    let env = launch
        .env()
        .into_iter()
        .map(|(name, value)| match value {
            EnvValue::Literal(v) => EnvVar {
                name: name.to_owned(),
                value: Some(v),
                value_from: None,
            },
            // The node's address, filled in by the downward API at start.
            EnvValue::NodeIp => EnvVar {
                name: name.to_owned(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "status.hostIP".to_owned(),
                        api_version: None,
                    }),
                    ..Default::default()
                }),
            },
            EnvValue::Secret { name: secret, key } => EnvVar {
                name: name.to_owned(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret,
                        key: key.to_owned(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            },
        })
        .collect();
    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(SIGNALING_PORT_NAME.to_owned()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Default::default()
    };
    Pod {
        metadata: metadata(meeting),
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            restart_policy: Some("Never".to_owned()),
            termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
            node_selector: (!spec.sfu.node_selector.is_empty())
                .then(|| spec.sfu.node_selector.clone()),
            tolerations: (!spec.sfu.tolerations.is_empty()).then(|| spec.sfu.tolerations.clone()),
            security_context: Some(pod_security::pod(None)),
            containers: vec![Container {
                name: "sfu".to_owned(),
                image: Some(settings.image.clone()),
                args: Some(args),
                env: Some(env),
                ports: Some(vec![
                    ContainerPort {
                        name: Some(SIGNALING_PORT_NAME.to_owned()),
                        container_port: SIGNALING_PORT,
                        protocol: Some("TCP".to_owned()),
                        ..Default::default()
                    },
                    ContainerPort {
                        name: Some(MEDIA_PORT_NAME.to_owned()),
                        container_port: MEDIA_PORT,
                        protocol: Some("UDP".to_owned()),
                        ..Default::default()
                    },
                    ContainerPort {
                        name: Some(MEDIA_TCP_PORT_NAME.to_owned()),
                        container_port: MEDIA_TCP_PORT,
                        protocol: Some("TCP".to_owned()),
                        ..Default::default()
                    },
                ]),
                readiness_probe: Some(probe("/readyz", 2, 2)),
                liveness_probe: Some(probe("/healthz", 10, 3)),
                resources: Some(spec.sfu.resources.clone().unwrap_or_else(default_resources)),
                security_context: Some(pod_security::container()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod network_policy_tests {
    use super::*;

    #[test]
    fn prometheus_namespaces_may_scrape_the_signaling_port_and_nothing_more() {
        let m: Meeting = serde_yaml::from_str(
            "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata: {name: m, namespace: team, uid: u1}\nspec: {title: T}\n",
        )
        .unwrap();
        let np = network_policy(&m, "raum-system", &["monitoring".to_owned()]);
        let rules = np.spec.unwrap().ingress.unwrap();
        let from = rules[0].from.as_ref().unwrap();
        assert_eq!(from.len(), 3, "gateway, operator, and monitoring's pods");
        let scraper = &from[2];
        assert_eq!(
            scraper
                .namespace_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["kubernetes.io/metadata.name"],
            "monitoring"
        );
        assert_eq!(
            rules[0].ports.as_ref().unwrap().len(),
            1,
            "the signaling port only"
        );
    }

    #[test]
    fn signaling_only_from_raums_pods_and_media_from_anywhere() {
        let m: Meeting = serde_yaml::from_str(
            "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata: {name: m, namespace: team, uid: u1}\nspec: {title: T}\n",
        )
        .unwrap();
        let np = network_policy(&m, "raum-system", &[]);
        assert_eq!(np.metadata.name.as_deref(), Some("raum-m"));
        assert_eq!(np.metadata.namespace.as_deref(), Some("team"));
        assert!(
            np.metadata.owner_references.is_some(),
            "goes with the meeting"
        );
        let spec = np.spec.unwrap();
        assert_eq!(
            spec.pod_selector.unwrap().match_labels.unwrap()["app.kubernetes.io/name"],
            "raum-sfu"
        );
        let rules = spec.ingress.unwrap();
        assert_eq!(rules.len(), 2);
        let signaling = &rules[0];
        let from = signaling.from.as_ref().unwrap();
        let names: Vec<&str> = from
            .iter()
            .map(|p| {
                let ns = p
                    .namespace_selector
                    .as_ref()
                    .unwrap()
                    .match_labels
                    .as_ref()
                    .unwrap();
                assert_eq!(ns["kubernetes.io/metadata.name"], "raum-system");
                p.pod_selector
                    .as_ref()
                    .unwrap()
                    .match_labels
                    .as_ref()
                    .unwrap()["app.kubernetes.io/name"]
                    .as_str()
            })
            .collect();
        assert_eq!(names, ["raum-gateway", "raum-operator"]);
        let tcp = &signaling.ports.as_ref().unwrap()[0];
        assert_eq!(
            (tcp.protocol.as_deref(), tcp.port.clone()),
            (Some("TCP"), Some(IntOrString::Int(8080)))
        );
        assert!(rules[1].from.is_none(), "media from anywhere");
        let udp = &rules[1].ports.as_ref().unwrap()[0];
        assert_eq!(
            (udp.protocol.as_deref(), udp.port.clone()),
            (Some("UDP"), Some(IntOrString::Int(50000)))
        );
        let ice_tcp = &rules[1].ports.as_ref().unwrap()[1];
        assert_eq!(
            (ice_tcp.protocol.as_deref(), ice_tcp.port.clone()),
            (Some("TCP"), Some(IntOrString::Int(50000)))
        );
        assert_eq!(spec.policy_types.unwrap(), ["Ingress"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MeetingSpec;

    fn meeting(yaml: &str) -> Meeting {
        let spec: MeetingSpec = serde_yaml::from_str(yaml).unwrap();
        let mut m = Meeting::new("elternabend", spec);
        m.metadata.namespace = Some("schule".to_owned());
        m.metadata.uid = Some("0b9e0a3c-1111-2222-3333-444455556666".to_owned());
        m
    }

    const PORTS: MediaPorts = MediaPorts {
        udp: 50000,
        tcp: 50000,
    };

    fn settings(exposure: MediaExposure, ips: &[&str]) -> SfuSettings {
        SfuSettings {
            image: "raum:test".to_owned(),
            media_exposure: exposure,
            advertise_ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            network_policy_from: None,
            metrics_from: vec![],
            turn: None,
        }
    }

    #[test]
    fn the_host_link_is_in_a_secret_of_the_meeting() {
        let m = meeting("title: t");
        let s = host_secret(&m, "https://meet.example/j/HOST");
        assert_eq!(s.metadata.name.as_deref(), Some("raum-elternabend-host"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("schule"));
        assert_eq!(s.immutable, Some(true));
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.uid, m.uid().unwrap());
        assert_eq!(
            s.data.as_ref().unwrap()[HOST_URL_KEY].0,
            b"https://meet.example/j/HOST"
        );
    }

    #[test]
    fn with_turn_the_pod_reads_its_meetings_key_from_a_secret_of_the_meeting() {
        let m = meeting("title: t");
        let plain = settings(MediaExposure::NodePort, &[]);
        assert!(turn_secret(&m, &plain).is_none());
        let server = TurnSecret::from_bytes(b"the TURN server's own secret");
        let with_turn = SfuSettings {
            turn: Some(TurnSettings {
                urls: vec!["turns:turn.example.org:443?transport=tcp".to_owned()],
                secret: server.clone(),
            }),
            ..plain.clone()
        };
        let uid = m.uid().unwrap();
        let s = turn_secret(&m, &with_turn).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("raum-elternabend-turn"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("schule"));
        assert_eq!(s.immutable, Some(true));
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Meeting", uid.as_str())
        );
        let key = &s.data.as_ref().unwrap()[contract::TURN_SECRET_KEY].0;
        assert_eq!(key, server.meeting_key(&uid).as_bytes());
        assert!(
            !key.windows(6).any(|w| w == b"server"),
            "the TURN server's secret itself is not in it"
        );

        let p = pod(&m, &with_turn, ("tok", "host-tok"), PORTS);
        let a = args(&p);
        for want in [
            "--turn-url=turns:turn.example.org:443?transport=tcp".to_owned(),
            format!("--turn-key-id={uid}"),
        ] {
            assert!(a.contains(&want), "{want} missing from {a:?}");
        }
        let env = p.spec.as_ref().unwrap().containers[0].env.clone().unwrap();
        let secret = env
            .iter()
            .find(|e| e.name == contract::ENV_TURN_SECRET)
            .unwrap();
        assert!(secret.value.is_none(), "never a literal");
        let from = secret
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (from.name.as_str(), from.key.as_str()),
            ("raum-elternabend-turn", contract::TURN_SECRET_KEY)
        );
        let p = pod(&m, &plain, ("tok", "host-tok"), PORTS);
        let env = p.spec.as_ref().unwrap().containers[0].env.clone().unwrap();
        assert!(env.iter().all(|e| e.name != contract::ENV_TURN_SECRET));
        assert!(args(&p).iter().all(|a| !a.starts_with("--turn")));
    }

    fn args(p: &Pod) -> Vec<String> {
        p.spec.as_ref().unwrap().containers[0].args.clone().unwrap()
    }

    #[test]
    fn the_pod_has_no_volumes_no_token_and_a_restricted_security_context() {
        let p = pod(
            &meeting("title: t"),
            &settings(MediaExposure::NodePort, &[]),
            ("tok", "host-tok"),
            MediaPorts {
                udp: 31000,
                tcp: 31001,
            },
        );
        let spec = p.spec.as_ref().unwrap();
        assert!(spec.volumes.is_none());
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.termination_grace_period_seconds, Some(5));
        let psc = spec.security_context.as_ref().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            psc.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        assert_eq!(spec.containers.len(), 1);
        let c = &spec.containers[0];
        assert!(c.volume_mounts.is_none());
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop,
            Some(vec!["ALL".to_owned()])
        );
        assert!(sc.privileged.is_none() && sc.capabilities.as_ref().unwrap().add.is_none());
    }

    #[test]
    fn the_pod_runs_raum_sfu_with_probes_and_the_meeting_limits() {
        let m = meeting(
            "title: t\nmaxParticipants: 12\nmedia: {video: false, maxVideoBitrateKbps: 900}\nchat: {enabled: false}",
        );
        let p = pod(
            &m,
            &settings(MediaExposure::NodePort, &[]),
            ("tok", "host-tok"),
            MediaPorts {
                udp: 31000,
                tcp: 31001,
            },
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(c.image.as_deref(), Some("raum:test"));
        let a = args(&p);
        assert_eq!(a[0], "sfu");
        for want in [
            "--max-participants=12",
            "--max-video-bitrate-kbps=900",
            "--advertise-port=31000",
            "--media-port=50000",
            "--media-tcp-port=50000",
            "--advertise-tcp-port=31001",
            "--no-video",
            "--no-chat",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
        }
        assert!(!a.iter().any(|x| x == "--no-audio"));
        let ready = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(ready.path.as_deref(), Some("/readyz"));
        assert_eq!(ready.port, IntOrString::String("signaling".to_owned()));
        let live = c
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(live.path.as_deref(), Some("/healthz"));
    }

    #[test]
    fn the_pod_carries_the_token_digest_never_the_token() {
        let p = pod(
            &meeting("title: t"),
            &settings(MediaExposure::NodePort, &[]),
            ("s3cret-token", "h0st-token"),
            PORTS,
        );
        let yaml = serde_yaml::to_string(&p).unwrap();
        assert!(!yaml.contains("s3cret-token") && !yaml.contains("h0st-token"));
        assert!(yaml.contains(&token_digest("s3cret-token")));
        assert!(yaml.contains(&token_digest("h0st-token")));
        assert_eq!(
            token_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn advertised_addresses_come_from_settings_or_the_node() {
        let m = meeting("title: t");
        let p = pod(
            &m,
            &settings(MediaExposure::NodePort, &["203.0.113.7", "2001:db8::7"]),
            ("t", "h"),
            PORTS,
        );
        let a = args(&p);
        assert!(a.contains(&"--advertise-ip=203.0.113.7".to_owned()));
        assert!(a.contains(&"--advertise-ip=2001:db8::7".to_owned()));
        let env = p.spec.as_ref().unwrap().containers[0].env.clone().unwrap();
        assert!(!env.iter().any(|e| e.name == "RAUM_ADVERTISE_IP"));

        let p = pod(
            &m,
            &settings(MediaExposure::NodePort, &[]),
            ("t", "h"),
            PORTS,
        );
        let env = p.spec.as_ref().unwrap().containers[0].env.clone().unwrap();
        let host = env.iter().find(|e| e.name == "RAUM_ADVERTISE_IP").unwrap();
        let field = host
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap();
        assert_eq!(field.field_path, "status.hostIP");
    }

    #[test]
    fn scheduling_knobs_and_resources_come_from_the_spec() {
        let m = meeting(
            "title: t\nsfu:\n  resources: {requests: {cpu: '2'}}\n  nodeSelector: {media: 'yes'}\n  tolerations: [{key: media, operator: Exists}]",
        );
        let p = pod(
            &m,
            &settings(MediaExposure::ClusterIp, &[]),
            ("t", "h"),
            PORTS,
        );
        let spec = p.spec.unwrap();
        assert_eq!(spec.node_selector.unwrap()["media"], "yes");
        assert_eq!(spec.tolerations.unwrap()[0].key.as_deref(), Some("media"));
        let res = spec.containers[0].resources.clone().unwrap();
        assert_eq!(res.requests.unwrap()["cpu"], Quantity("2".to_owned()));

        let p = pod(
            &meeting("title: t"),
            &settings(MediaExposure::ClusterIp, &[]),
            ("t", "h"),
            PORTS,
        );
        let res = p.spec.unwrap().containers[0].resources.clone().unwrap();
        assert_eq!(res.limits.unwrap()["memory"], Quantity("512Mi".to_owned()));
    }

    #[test]
    fn pod_and_service_are_owned_by_the_meeting_and_labelled() {
        let m = meeting("title: t");
        let s = settings(MediaExposure::NodePort, &[]);
        for meta in [
            pod(&m, &s, ("t", "h"), PORTS).metadata,
            service(&m, &s).metadata,
        ] {
            assert_eq!(meta.name.as_deref(), Some("raum-elternabend"));
            assert_eq!(meta.namespace.as_deref(), Some("schule"));
            let owner = &meta.owner_references.unwrap()[0];
            assert_eq!(owner.kind, "Meeting");
            assert_eq!(owner.name, "elternabend");
            assert_eq!(owner.uid, "0b9e0a3c-1111-2222-3333-444455556666");
            assert_eq!(owner.controller, Some(true));
            let l = meta.labels.unwrap();
            assert_eq!(l["app.kubernetes.io/name"], "raum-sfu");
            assert_eq!(l["app.kubernetes.io/instance"], "elternabend");
            assert_eq!(l["app.kubernetes.io/managed-by"], "raum-operator");
            assert_eq!(l["raum.dev/meeting"], "elternabend");
        }
    }

    #[test]
    fn the_service_exposes_signaling_and_one_media_port() {
        let m = meeting("title: t");
        let svc = service(&m, &settings(MediaExposure::NodePort, &[]));
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
        let ports = spec.ports.as_ref().unwrap();
        assert_eq!(ports.len(), 3);
        assert_eq!(
            (ports[0].protocol.as_deref(), ports[0].port),
            (Some("TCP"), 8080)
        );
        assert_eq!(
            (ports[1].protocol.as_deref(), ports[1].port),
            (Some("UDP"), 50000)
        );
        assert_eq!(
            (ports[2].protocol.as_deref(), ports[2].port),
            (Some("TCP"), 50000),
            "ICE-TCP on the same number"
        );
        assert_eq!(
            spec.selector.as_ref().unwrap()["raum.dev/meeting"],
            "elternabend"
        );

        let svc = service(&m, &settings(MediaExposure::ClusterIp, &[]));
        assert_eq!(
            svc.spec.as_ref().unwrap().type_.as_deref(),
            Some("ClusterIP")
        );
        assert_eq!(
            advertised_media_ports(&svc),
            Some(MediaPorts {
                udp: 50000,
                tcp: 50000
            })
        );
    }

    #[test]
    fn the_node_port_is_read_back_from_the_applied_service() {
        let mut svc = service(
            &meeting("title: t"),
            &settings(MediaExposure::NodePort, &[]),
        );
        assert_eq!(advertised_media_ports(&svc), None, "not allocated yet");
        svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[1].node_port = Some(31234);
        assert_eq!(advertised_media_ports(&svc), None, "TCP not allocated yet");
        svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[2].node_port = Some(31240);
        assert_eq!(
            advertised_media_ports(&svc),
            Some(MediaPorts {
                udp: 31234,
                tcp: 31240
            })
        );
    }

    #[test]
    fn long_meeting_names_give_short_labels() {
        let long = "x".repeat(253);
        assert!(sfu_name(&long).len() <= 63);
        assert!(labels(&long)["raum.dev/meeting"].len() <= 63);
    }
}
