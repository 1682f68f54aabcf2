//! The CRDs from `crds/` on a real API server: they install, they accept good objects,
//! and the server itself refuses bad ones with a message a person understands.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use raum::api::{Meeting, RetentionPolicy};
use serde_json::{Value, json};

use crate::support::cluster::{TestNamespace, cluster, wait};

fn dynamic_api<K: Resource<DynamicType = ()>>(ns: &TestNamespace) -> Api<DynamicObject> {
    Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::erase::<K>(&()))
}

async fn create<K: Resource<DynamicType = ()>>(
    ns: &TestNamespace,
    name: &str,
    spec: Value,
) -> Result<DynamicObject, kube::Error> {
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap();
    dynamic_api::<K>(ns)
        .create(&PostParams::default(), &obj)
        .await
}

/// Creates the object and returns the API server's refusal message, failing the test
/// if it was accepted or refused for another reason than validation.
async fn refusal<K: Resource<DynamicType = ()>>(
    ns: &TestNamespace,
    name: &str,
    spec: Value,
) -> String {
    match create::<K>(ns, name, spec.clone()).await {
        Ok(_) => panic!("{name}: the API server accepted {spec}"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(
                status.code, 422,
                "{name}: not a validation error: {status:?}"
            );
            status.message
        }
        Err(e) => panic!("{name}: unexpected error {e}"),
    }
}

#[tokio::test]
async fn crds_install_and_are_established_with_names_and_columns() {
    let c = cluster();
    c.install_crds().await;
    let api: Api<CustomResourceDefinition> = Api::all(c.client().await);
    let mtg = api.get("meetings.raum.dev").await.unwrap();
    assert_eq!(mtg.spec.names.short_names, Some(vec!["mtg".to_string()]));
    assert_eq!(mtg.spec.names.categories, Some(vec!["raum".to_string()]));
    assert_eq!(mtg.spec.scope, "Namespaced");
    let v = &mtg.spec.versions[0];
    assert!(
        v.subresources.as_ref().unwrap().status.is_some(),
        "status subresource"
    );
    let cols: Vec<&str> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(cols, ["Phase", "Participants", "URL", "Age"]);

    let rp = api.get("retentionpolicies.raum.dev").await.unwrap();
    assert_eq!(rp.spec.names.short_names, Some(vec!["rp".to_string()]));
    assert_eq!(rp.spec.names.categories, Some(vec!["raum".to_string()]));
}

#[tokio::test]
async fn valid_objects_are_accepted_and_defaulted() {
    let c = cluster();
    c.install_crds().await;
    let ns = c.namespace("crd-valid", &[]).await;

    // The smallest meeting: the server fills in the documented defaults.
    create::<Meeting>(&ns, "minimal", json!({"title": "Elternabend"}))
        .await
        .unwrap();
    let m = ns.api::<Meeting>().get("minimal").await.unwrap();
    assert_eq!(m.spec.max_participants, 50);
    assert!(m.spec.media.audio && m.spec.media.video && m.spec.chat.enabled);
    assert_eq!(m.spec.media.max_video_bitrate_kbps, 1500);
    assert!(!m.spec.lobby && m.spec.participants_may_unmute);
    assert_eq!(m.spec.without_host, raum::api::meeting::WithoutHost::Open);

    // Every field set.
    create::<Meeting>(
        &ns,
        "full",
        json!({
            "title": "Fachkonferenz Mathematik",
            "startsAt": "2026-12-01T09:00:00+01:00",
            "endsAt": "2026-12-01T10:30:00+01:00",
            "maxParticipants": 500,
            "media": {"audio": true, "video": false, "maxVideoBitrateKbps": 800},
            "chat": {"enabled": false},
            "lobby": true,
            "withoutHost": "wait",
            "screenShare": "hosts",
            "participantsMayUnmute": false,
            "sfu": {
                "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}},
                "nodeSelector": {"raum.dev/media": "true"},
                "tolerations": [{"key": "media", "operator": "Exists", "effect": "NoSchedule"}]
            }
        }),
    )
    .await
    .unwrap();
    create::<Meeting>(
        &ns,
        "by-duration",
        json!({"title": "t", "duration": "1h30m", "maxParticipants": 2}),
    )
    .await
    .unwrap();

    // The smallest policy is the privacy notice's: eight weeks.
    create::<RetentionPolicy>(&ns, "access-log", json!({}))
        .await
        .unwrap();
    let p = ns.api::<RetentionPolicy>().get("access-log").await.unwrap();
    assert_eq!(p.spec.max_age, "56d");
    assert_eq!(p.spec.max_age().unwrap().hours(), 1344);
    assert_eq!(p.spec.access_log.claim_name, "raum-access-log");
    for (name, spec) in [
        (
            "weeks",
            json!({"maxAge": "8w", "schedule": "0 3 * * *", "timeZone": "Europe/Berlin"}),
        ),
        (
            "hours",
            json!({"maxAge": "1344h", "schedule": "@daily", "timeZone": "America/Argentina/Buenos_Aires", "suspend": true}),
        ),
        (
            "located",
            json!({"accessLog": {"claimName": "logs.v1", "path": "gateway/access"}, "timeZone": "Etc/GMT+1", "schedule": "*/15 1-5 * JAN-DEC MON-FRI"}),
        ),
    ] {
        create::<RetentionPolicy>(&ns, name, spec)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[tokio::test]
async fn invalid_meetings_are_refused_with_a_readable_reason() {
    let c = cluster();
    c.install_crds().await;
    let ns = c.namespace("crd-bad-mtg", &[]).await;
    let cases = [
        (
            "ends-before-start",
            json!({"title": "t", "startsAt": "2026-12-01T10:00:00Z", "endsAt": "2026-12-01T09:00:00Z"}),
            "endsAt must be later than startsAt",
        ),
        (
            "ends-at-start",
            json!({"title": "t", "startsAt": "2026-12-01T10:00:00+01:00", "endsAt": "2026-12-01T09:00:00Z"}),
            "endsAt must be later than startsAt",
        ),
        (
            "end-twice",
            json!({"title": "t", "endsAt": "2026-12-01T10:00:00Z", "duration": "1h"}),
            "set either endsAt or duration, not both",
        ),
        (
            "too-many",
            json!({"title": "t", "maxParticipants": 501}),
            "spec.maxParticipants",
        ),
        (
            "too-few",
            json!({"title": "t", "maxParticipants": 1}),
            "spec.maxParticipants",
        ),
        ("empty-title", json!({"title": ""}), "spec.title"),
        (
            "blank-title",
            json!({"title": "   "}),
            "title must not be empty",
        ),
        (
            "no-title",
            json!({"maxParticipants": 5}),
            "spec.title: Required value",
        ),
        (
            "bad-duration",
            json!({"title": "t", "duration": "90 minutes"}),
            "duration must be hours, minutes and seconds",
        ),
        (
            "long-duration",
            json!({"title": "t", "duration": "25h"}),
            "duration must be between 1m and 24h",
        ),
        (
            "bad-time",
            json!({"title": "t", "startsAt": "tomorrow"}),
            "spec.startsAt",
        ),
        (
            "bad-without-host",
            json!({"title": "t", "withoutHost": "later"}),
            "spec.withoutHost: Unsupported value: \"later\"",
        ),
        (
            "lobby-not-bool",
            json!({"title": "t", "lobby": "yes"}),
            "spec.lobby",
        ),
        (
            "bad-screen-share",
            json!({"title": "t", "screenShare": "teachers"}),
            "spec.screenShare: Unsupported value: \"teachers\"",
        ),
    ];
    for (name, spec, expected) in cases {
        let msg = refusal::<Meeting>(&ns, name, spec).await;
        assert!(
            msg.contains(expected),
            "{name}: message {msg:?} does not contain {expected:?}"
        );
    }
    // The same max-participants refusal names the bound a person must stay under.
    let msg = refusal::<Meeting>(
        &ns,
        "way-too-many",
        json!({"title": "t", "maxParticipants": 9000}),
    )
    .await;
    assert!(msg.contains("500"), "{msg}");
}

#[tokio::test]
async fn invalid_retention_policies_are_refused_with_a_readable_reason() {
    let c = cluster();
    c.install_crds().await;
    let ns = c.namespace("crd-bad-rp", &[]).await;
    let cases = [
        (
            "age-words",
            json!({"maxAge": "8 weeks"}),
            "maxAge must be a whole number of hours, days or weeks",
        ),
        (
            "age-minutes",
            json!({"maxAge": "90m"}),
            "maxAge must be a whole number of hours, days or weeks",
        ),
        (
            "age-zero",
            json!({"maxAge": "0d"}),
            "maxAge must be a whole number of hours, days or weeks",
        ),
        (
            "cron-four",
            json!({"schedule": "0 3 * *"}),
            "schedule must be five cron fields",
        ),
        (
            "cron-six",
            json!({"schedule": "0 0 3 * * *"}),
            "schedule must be five cron fields",
        ),
        (
            "cron-tz",
            json!({"schedule": "CRON_TZ=UTC 0 3 * * *"}),
            "schedule must be five cron fields",
        ),
        (
            "tz-spaces",
            json!({"timeZone": "Central European Time"}),
            "timeZone must be an IANA time zone name",
        ),
        (
            "tz-offset",
            json!({"timeZone": "+01:00"}),
            "timeZone must be an IANA time zone name",
        ),
        (
            "claim-upper",
            json!({"accessLog": {"claimName": "Access_Log"}}),
            "claimName must be the name of a PersistentVolumeClaim",
        ),
        (
            "path-escape",
            json!({"accessLog": {"path": "../etc"}}),
            "path must be relative",
        ),
        (
            "path-absolute",
            json!({"accessLog": {"path": "/var/log"}}),
            "path must be relative",
        ),
    ];
    for (name, spec, expected) in cases {
        let msg = refusal::<RetentionPolicy>(&ns, name, spec).await;
        assert!(
            msg.contains(expected),
            "{name}: message {msg:?} does not contain {expected:?}"
        );
    }
}

#[tokio::test]
async fn kubectl_shows_refusals_field_docs_and_the_url_column() {
    let c = cluster();
    c.install_crds().await;
    let ns = c.namespace("crd-kubectl", &[]).await;

    // What a person sees when applying a bad Meeting with kubectl.
    let bad = format!(
        "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata: {{name: bad, namespace: {}}}\nspec:\n  title: Sprechstunde\n  startsAt: 2026-12-01T10:00:00Z\n  endsAt: 2026-12-01T09:00:00Z\n",
        ns.name
    );
    let out = c.kubectl(&["apply", "-f", "-"], Some(&bad));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("endsAt must be later than startsAt"),
        "{stderr}"
    );

    // A good one, listed by its short name with the URL column.
    let good = bad
        .replace("name: bad", "name: good")
        .replace("09:00", "11:00");
    let out = c.kubectl(&["apply", "-f", "-"], Some(&good));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = c.kubectl(&["get", "mtg", "-n", &ns.name], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "PHASE", "PARTICIPANTS", "URL", "AGE"],
        "{table}"
    );
    assert!(table.contains("good"), "{table}");
    let out = c.kubectl(&["get", "raum", "-n", &ns.name, "-o", "name"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("meeting.raum.dev/good"));

    // Field docs reach `kubectl explain` (the OpenAPI document is published a moment
    // after the CRD is established, so ask until it is there).
    for (field, doc) in [
        (
            "meeting.spec.maxParticipants",
            "The most people who may be in the meeting at once",
        ),
        ("meeting.spec.endsAt", "Must be later than startsAt"),
        (
            "meeting.spec.lobby",
            "wait in a lobby until a host lets them in",
        ),
        ("meeting.spec.screenShare", "Who may share a screen"),
        (
            "meeting.spec.withoutHost",
            "participants wait until a host has joined",
        ),
        (
            "retentionpolicy.spec.maxAge",
            "How long access-log entries are kept",
        ),
        (
            "retentionpolicy.spec.accessLog.claimName",
            "The PersistentVolumeClaim holding the access log",
        ),
    ] {
        let explained = wait(
            &format!("kubectl explain {field}"),
            Duration::from_secs(60),
            async {
                loop {
                    let out = c.kubectl(&["explain", field], None);
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    if out.status.success() && text.contains(doc) {
                        return text;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
        )
        .await;
        assert!(explained.contains("DESCRIPTION"), "{explained}");
    }
}

#[tokio::test]
async fn the_examples_in_manifests_are_accepted() {
    let c = cluster();
    c.install_crds().await;
    let ns = c.namespace("examples", &[]).await;
    let dir = crate::support::cluster::repo().join("manifests/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let out = c.kubectl(
            &[
                "apply",
                "--dry-run=server",
                "-n",
                &ns.name,
                "-f",
                f.to_str().unwrap(),
            ],
            None,
        );
        assert!(
            out.status.success(),
            "{} refused: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
