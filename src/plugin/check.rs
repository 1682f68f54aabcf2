//! `kubectl raum check`: the privacy check. It reads the cluster and says, item by
//! item, whether the privacy notice holds, with the evidence: what a data protection
//! officer can verify without reading code, and what monitoring can run (exit 1 on
//! any failure).
//!
//! Gathering ([`run`]) is apart from judging: each item is a pure function of what was
//! read, so each verdict is tested on its own.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use super::holds::summary_in;
use super::status::ago;
use super::{AUDITOR, Error, Target};
use crate::access_log::summary::Summary;
use crate::api::RetentionPolicy;
use crate::api::holds::Holds;
use crate::cron::Schedule;
use crate::public_url::PublicUrl;

/// Flags of `kubectl raum check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The RetentionPolicy (in -n's namespace: raum's own).
    #[arg(long, default_value = "access-log")]
    pub policy: String,

    /// The public URL whose pages' Content-Security-Policy is checked. Default: the
    /// one the gateway publishes with the access log's summary.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<PublicUrl>,

    /// How old the gateway's access-log summary may be before it counts as missing.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub summary_max_age: Duration,
}

/// One item's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// A short name, stable for scripts.
    pub name: &'static str,
    /// Whether it holds.
    pub pass: bool,
    /// What was seen, in words.
    pub evidence: String,
}

fn item(name: &'static str, pass: bool, evidence: impl Into<String>) -> Item {
    Item {
        name,
        pass,
        evidence: evidence.into(),
    }
}

/// Every SFU pod has no volumes, mounts nothing and gets no service-account token.
pub fn sfu_pods(pods: &[Pod]) -> Item {
    let mut offenders = Vec::new();
    for p in pods {
        let name = format!(
            "{}/{}",
            p.metadata.namespace.as_deref().unwrap_or_default(),
            p.metadata.name.as_deref().unwrap_or_default()
        );
        let Some(spec) = &p.spec else { continue };
        let volumes: Vec<&str> = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        if !volumes.is_empty() {
            offenders.push(format!("{name} has volumes ({})", volumes.join(", ")));
        }
        if spec.automount_service_account_token != Some(false) {
            offenders.push(format!("{name} may get a service-account token"));
        }
        let mounts = spec
            .containers
            .iter()
            .any(|c| c.volume_mounts.as_ref().is_some_and(|m| !m.is_empty()));
        if mounts {
            offenders.push(format!("{name} mounts volumes"));
        }
    }
    if offenders.is_empty() {
        item(
            "sfu-pods",
            true,
            format!(
                "{} SFU pods: none has a volume or a service-account token",
                pods.len()
            ),
        )
    } else {
        item("sfu-pods", false, offenders.join("; "))
    }
}

/// The summary, if it is fresh enough to judge by.
fn fresh(summary: Option<&Summary>, now: Timestamp, max_age: Duration) -> Result<&Summary, String> {
    let s = summary
        .ok_or("no access-log summary from the gateway (ConfigMap raum-access-log-summary)")?;
    let updated = s.updated.ok_or("the access-log summary has no time")?;
    let age = now.duration_since(updated);
    if age > SignedDuration::try_from(max_age).unwrap_or(SignedDuration::MAX) {
        return Err(format!(
            "the gateway's access-log summary is {} old (is the gateway running?)",
            ago(age)
        ));
    }
    Ok(s)
}

/// The oldest entry no hold covers is younger than maxAge plus the longest time
/// between two pruning runs.
pub fn oldest_entry(
    rp: &RetentionPolicy,
    summary: Option<&Summary>,
    now: Timestamp,
    summary_max_age: Duration,
) -> Item {
    const NAME: &str = "access-log-age";
    let s = match fresh(summary, now, summary_max_age) {
        Ok(s) => s,
        Err(e) => return item(NAME, false, e),
    };
    let max_age = match rp.spec.max_age() {
        Ok(m) => m.duration(),
        Err(e) => return item(NAME, false, format!("the policy's maxAge: {e}")),
    };
    let period = match period(rp, now) {
        Ok(p) => p,
        Err(e) => return item(NAME, false, e),
    };
    let holds = Holds::from_annotations(
        rp.metadata
            .annotations
            .as_ref()
            .unwrap_or(&Default::default()),
    );
    let allowed = max_age + period;
    let oldest =
        s.oldest_unheld(|from, to| holds.contain(from, to + SignedDuration::from_millis(1)));
    let limit = format!(
        "{} (maxAge {} + {} between pruning runs)",
        ago(allowed),
        ago(max_age),
        ago(period)
    );
    match oldest {
        None => item(
            NAME,
            true,
            format!(
                "no entry outside a hold in {} day files; allowed: {limit}",
                s.files.len()
            ),
        ),
        Some(t) => {
            let age = now.duration_since(t);
            let evidence = format!(
                "oldest entry no hold covers: {t} ({} old); allowed: {limit}",
                ago(age)
            );
            item(NAME, age <= allowed, evidence)
        }
    }
}

/// The longest time between two runs of the policy's schedule, in its time zone (a
/// change to summer time makes a day 23 or 25 hours long).
fn period(rp: &RetentionPolicy, now: Timestamp) -> Result<SignedDuration, String> {
    let schedule: Schedule = rp
        .spec
        .schedule
        .parse()
        .map_err(|e| format!("the policy's schedule {:?}: {e}", rp.spec.schedule))?;
    let tz = jiff::tz::TimeZone::get(&rp.spec.time_zone)
        .map_err(|e| format!("the policy's time zone {:?}: {e}", rp.spec.time_zone))?;
    schedule
        .longest_gap(now, &tz)
        .map_err(|e| format!("the policy's schedule {:?}: {e}", rp.spec.schedule))
}

/// The last pruning run succeeded and is not overdue (a policy that never ran yet
/// passes while its first run is not overdue).
pub fn last_run(rp: &RetentionPolicy, now: Timestamp) -> Item {
    const NAME: &str = "last-prune";
    let period = match period(rp, now) {
        Ok(p) => p,
        Err(e) => return item(NAME, false, e),
    };
    // A run may take a while, and a CronJob starts late at times.
    let due = period + SignedDuration::from_hours(1);
    let st = rp.status.clone().unwrap_or_default();
    let Some(run) = st.last_run else {
        let created = rp.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
        let waited = now.duration_since(created);
        return item(
            NAME,
            waited <= due,
            format!("no pruning run yet; the policy is {} old", ago(waited)),
        );
    };
    let outcome = run.outcome.clone().unwrap_or_else(|| "no outcome".into());
    let Some(finished) = run.finished.map(|t| t.0) else {
        return item(
            NAME,
            false,
            format!("the last run has not finished ({outcome})"),
        );
    };
    let since = now.duration_since(finished);
    let evidence = format!(
        "{outcome} at {finished} ({} ago): {} files deleted, {} rewritten, {} entries removed, {} kept for holds",
        ago(since),
        run.files_deleted,
        run.files_rewritten,
        run.entries_removed,
        run.entries_kept_for_holds
    );
    if outcome != "Succeeded" {
        return item(NAME, false, evidence);
    }
    if since > due {
        return item(NAME, false, format!("overdue: {evidence}"));
    }
    item(NAME, true, evidence)
}

/// Every hold annotation parses (one that does not holds everything).
pub fn holds_parse(rp: &RetentionPolicy) -> Item {
    let holds = Holds::from_annotations(
        rp.metadata
            .annotations
            .as_ref()
            .unwrap_or(&Default::default()),
    );
    if holds.invalid.is_empty() {
        let n = holds.windows.len() + usize::from(holds.all.is_some());
        return item("holds", true, format!("{n} holds, all parse"));
    }
    let bad: Vec<String> = holds
        .invalid
        .iter()
        .map(|i| format!("{}: {}", i.key, i.reason))
        .collect();
    item(
        "holds",
        false,
        format!(
            "does not parse (and so holds everything): {}",
            bad.join("; ")
        ),
    )
}

/// The access log holds only the three fields (every line the gateway read).
pub fn fields(summary: Option<&Summary>, now: Timestamp, max_age: Duration) -> Item {
    const NAME: &str = "access-log-fields";
    match fresh(summary, now, max_age) {
        Err(e) => item(NAME, false, e),
        Ok(s) if s.lines_with_other_fields == 0 => item(
            NAME,
            true,
            format!(
                "{} lines checked: each exactly time, ip and user_agent",
                s.lines_checked
            ),
        ),
        Ok(s) => item(
            NAME,
            false,
            format!(
                "{} of {} lines checked have other fields or are not JSON",
                s.lines_with_other_fields, s.lines_checked
            ),
        ),
    }
}

/// Sources a Content-Security-Policy may name without allowing another origin.
const OWN: [&str; 4] = ["'self'", "'none'", "data:", "blob:"];

/// The web client's Content-Security-Policy allows only its own origin.
pub fn csp(url: &str, header: Option<&str>) -> Item {
    const NAME: &str = "content-security-policy";
    let Some(policy) = header else {
        return item(
            NAME,
            false,
            format!("{url} sends no Content-Security-Policy"),
        );
    };
    let mut foreign = Vec::new();
    let mut default_src = false;
    for directive in policy.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        let mut parts = directive.split_whitespace();
        let name = parts.next().unwrap_or_default();
        default_src |= name == "default-src";
        // Directives that take no sources.
        if matches!(
            name,
            "upgrade-insecure-requests" | "block-all-mixed-content" | "sandbox"
        ) {
            continue;
        }
        for source in parts {
            if !OWN.contains(&source) {
                foreign.push(format!("{name} {source}"));
            }
        }
    }
    if !default_src {
        foreign.push("no default-src".into());
    }
    if foreign.is_empty() {
        item(NAME, true, format!("{url}: {policy}"))
    } else {
        item(
            NAME,
            false,
            format!("{url} allows more than its origin: {}", foreign.join(", ")),
        )
    }
}

/// Fetches `url` and returns its Content-Security-Policy header.
async fn fetch_csp(url: &str) -> Result<Option<String>, String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<bytes::Bytes>>(connector);
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.get(uri))
        .await
        .map_err(|_| format!("{url} did not answer within 10 s"))?
        .map_err(|e| format!("cannot fetch {url}: {e}"))?;
    let header = response
        .headers()
        .get(hyper::header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = response.into_body().collect().await;
    Ok(header)
}

/// Gathers what the items need, judges, prints; exit 1 if any item failed.
pub async fn run(target: &Target, args: Args, out: &mut impl Write) -> Result<ExitCode, Error> {
    let now = Timestamp::now();
    let rps: Api<RetentionPolicy> = Api::namespaced(target.client.clone(), &target.namespace);
    let rp = rps.get(&args.policy).await.map_err(|e| {
        Error::api(
            format!("read RetentionPolicy {}/{}", target.namespace, args.policy),
            AUDITOR,
            e,
        )
    })?;
    let pods: Api<Pod> = Api::all(target.client.clone());
    let sfus = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=raum-sfu"))
        .await
        .map_err(|e| Error::api("list pods in all namespaces", AUDITOR, e))?;
    let summary = summary_in(&target.client, &target.namespace).await;

    // Not from Meetings: their URLs carry join tokens, which an auditor needs not see.
    let url = match &args.public_url {
        Some(u) => Some(u.as_str().to_owned()),
        None => summary.as_ref().and_then(|s| s.public_url.clone()),
    };
    let csp_item = match url {
        None => item(
            "content-security-policy",
            false,
            "no public URL known (the gateway publishes none): pass --public-url",
        ),
        Some(base) => {
            let page = format!("{}/privacy", base.trim_end_matches('/'));
            match fetch_csp(&page).await {
                Ok(header) => csp(&page, header.as_deref()),
                Err(e) => item("content-security-policy", false, e),
            }
        }
    };

    let items = [
        sfu_pods(&sfus.items),
        oldest_entry(&rp, summary.as_ref(), now, args.summary_max_age),
        last_run(&rp, now),
        holds_parse(&rp),
        fields(summary.as_ref(), now, args.summary_max_age),
        csp_item,
    ];
    let width = items.iter().map(|i| i.name.len()).max().unwrap_or(0);
    for i in &items {
        writeln!(
            out,
            "{}  {:<width$}  {}",
            if i.pass { "PASS" } else { "FAIL" },
            i.name,
            i.evidence
        )?;
    }
    let failed = items.iter().filter(|i| !i.pass).count();
    if failed == 0 {
        writeln!(out, "privacy check: all {} items pass", items.len())?;
        Ok(ExitCode::SUCCESS)
    } else {
        writeln!(out, "privacy check: {failed} of {} items fail", items.len())?;
        Ok(ExitCode::FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::summary::FileSummary;
    use crate::api::retention_policy::{PruneRun, RetentionPolicySpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn policy(holds: &[(&str, &str)]) -> RetentionPolicy {
        let mut rp = RetentionPolicy::new(
            "access-log",
            serde_json::from_value::<RetentionPolicySpec>(serde_json::json!({})).unwrap(),
        );
        rp.metadata.annotations = Some(
            holds
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        rp.metadata.creation_timestamp = Some(Time(t("2026-12-01T00:00:00Z")));
        rp
    }

    fn summary(days: &[&str], updated: &str) -> Summary {
        Summary {
            updated: Some(t(updated)),
            files: days
                .iter()
                .map(|d| FileSummary {
                    name: format!("access-{d}.gw.jsonl"),
                    entries: 2,
                    oldest: Some(t(&format!("{d}T08:00:00Z"))),
                    newest: Some(t(&format!("{d}T09:00:00Z"))),
                    lines_with_other_fields: 0,
                })
                .collect(),
            public_url: None,
            lines_checked: 2 * days.len() as u64,
            lines_with_other_fields: 0,
        }
    }

    const NOW: &str = "2026-12-06T12:00:00Z";
    const TEN_MIN: Duration = Duration::from_secs(600);

    #[test]
    fn the_oldest_unheld_entry_may_be_max_age_plus_a_period_old() {
        let rp = policy(&[]);
        // Default maxAge 56 days, daily schedule: 57 days allowed.
        let ok = oldest_entry(
            &rp,
            Some(&summary(&["2026-10-11", "2026-12-05"], NOW)),
            t(NOW),
            TEN_MIN,
        );
        assert!(ok.pass, "{ok:?}");
        let old = oldest_entry(
            &rp,
            Some(&summary(&["2026-09-01", "2026-12-05"], NOW)),
            t(NOW),
            TEN_MIN,
        );
        assert!(!old.pass, "{old:?}");
        assert!(old.evidence.contains("2026-09-01T08:00:00Z"), "{old:?}");
        // Held: that day no longer counts.
        let held = policy(&[("hold.raum.dev/x", "2026-09-01/2026-09-01; evidence")]);
        let h = oldest_entry(
            &held,
            Some(&summary(&["2026-09-01", "2026-12-05"], NOW)),
            t(NOW),
            TEN_MIN,
        );
        assert!(h.pass, "{h:?}");
        // No summary, or a stale one: fail, saying why.
        let none = oldest_entry(&rp, None, t(NOW), TEN_MIN);
        assert!(
            !none.pass && none.evidence.contains("no access-log summary"),
            "{none:?}"
        );
        let stale = oldest_entry(
            &rp,
            Some(&summary(&["2026-12-05"], "2026-12-06T10:00:00Z")),
            t(NOW),
            TEN_MIN,
        );
        assert!(!stale.pass && stale.evidence.contains("old"), "{stale:?}");
    }

    #[test]
    fn the_last_run_must_have_succeeded_and_be_on_time() {
        let mut rp = policy(&[]);
        let fresh = last_run(&rp, t("2026-12-01T12:00:00Z"));
        assert!(
            fresh.pass,
            "a new policy waits for its first run: {fresh:?}"
        );
        assert!(!last_run(&rp, t(NOW)).pass, "five days without a run");
        let run = |finished: &str, outcome: &str| PruneRun {
            finished: Some(Time(t(finished))),
            outcome: Some(outcome.into()),
            ..PruneRun::default()
        };
        rp.status = Some(Default::default());
        rp.status.as_mut().unwrap().last_run = Some(run("2026-12-06T03:17:05Z", "Succeeded"));
        assert!(last_run(&rp, t(NOW)).pass);
        rp.status.as_mut().unwrap().last_run = Some(run("2026-12-06T03:17:05Z", "Failed: disk"));
        assert!(!last_run(&rp, t(NOW)).pass);
        rp.status.as_mut().unwrap().last_run = Some(run("2026-12-03T03:17:05Z", "Succeeded"));
        let late = last_run(&rp, t(NOW));
        assert!(
            !late.pass && late.evidence.starts_with("overdue"),
            "{late:?}"
        );
    }

    #[test]
    fn a_hold_that_does_not_parse_fails_the_check_with_its_reason() {
        assert!(holds_parse(&policy(&[("hold.raum.dev/a", "2026-11-01/2026-11-03")])).pass);
        let bad = holds_parse(&policy(&[("hold.raum.dev/a", "last week")]));
        assert!(
            !bad.pass && bad.evidence.contains("hold.raum.dev/a"),
            "{bad:?}"
        );
    }

    #[test]
    fn sfu_pods_with_volumes_or_tokens_fail() {
        let pod = |v: serde_json::Value| serde_json::from_value::<Pod>(v).unwrap();
        let clean = pod(serde_json::json!({
            "metadata": {"name": "raum-a", "namespace": "t"},
            "spec": {"automountServiceAccountToken": false, "containers": [{"name": "sfu"}]}
        }));
        assert!(sfu_pods(std::slice::from_ref(&clean)).pass);
        let with_volume = pod(serde_json::json!({
            "metadata": {"name": "raum-b", "namespace": "t"},
            "spec": {"automountServiceAccountToken": false, "containers": [{"name": "sfu"}],
                     "volumes": [{"name": "data", "emptyDir": {}}]}
        }));
        let i = sfu_pods(&[clean, with_volume]);
        assert!(
            !i.pass && i.evidence.contains("t/raum-b has volumes (data)"),
            "{i:?}"
        );
        let token = pod(serde_json::json!({
            "metadata": {"name": "raum-c", "namespace": "t"},
            "spec": {"containers": [{"name": "sfu"}]}
        }));
        assert!(!sfu_pods(&[token]).pass);
    }

    #[test]
    fn only_the_own_origin_passes_the_csp_item() {
        let raum = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                    media-src 'self' blob:; connect-src 'self'; form-action 'none'; \
                    frame-ancestors 'none'; base-uri 'none'";
        assert!(csp("u", Some(raum)).pass);
        assert!(!csp("u", None).pass);
        let cdn = csp(
            "u",
            Some("default-src 'self'; script-src 'self' https://cdn.example"),
        );
        assert!(
            !cdn.pass && cdn.evidence.contains("https://cdn.example"),
            "{cdn:?}"
        );
        assert!(!csp("u", Some("default-src *")).pass);
        assert!(!csp("u", Some("script-src 'self' 'unsafe-inline'")).pass);
        assert!(!csp("u", Some("script-src 'self'")).pass, "no default-src");
    }

    #[test]
    fn foreign_fields_fail_the_fields_item() {
        let mut s = summary(&["2026-12-05"], NOW);
        assert!(fields(Some(&s), t(NOW), TEN_MIN).pass);
        s.lines_with_other_fields = 1;
        assert!(!fields(Some(&s), t(NOW), TEN_MIN).pass);
    }
}
