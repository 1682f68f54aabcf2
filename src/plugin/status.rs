//! `kubectl raum url` and `kubectl raum status`.

use std::collections::BTreeMap;
use std::io::Write;

use jiff::Timestamp;
use kube::Api;
use kube::api::ListParams;

use super::holds::summary_in;
use super::{AUDITOR, Error, Target, table};
use crate::api::{Meeting, RetentionPolicy};

/// `kubectl raum url MEETING`: the participants' link (the host link is in the
/// Secret raum-MEETING-host, for whoever may read it).
pub async fn url(target: &Target, name: &str, out: &mut impl Write) -> Result<(), Error> {
    let api: Api<Meeting> = Api::namespaced(target.client.clone(), &target.namespace);
    let m = api.get(name).await.map_err(|e| {
        Error::api(
            format!("read Meeting {}/{name}", target.namespace),
            AUDITOR,
            e,
        )
    })?;
    match m.status.and_then(|s| s.url) {
        Some(url) => writeln!(out, "{url}")?,
        None => {
            return Err(Error::NotFound(format!(
                "Meeting {}/{name} has no URL yet (the operator has not accepted it)",
                target.namespace
            )));
        }
    }
    Ok(())
}

/// A duration in days, hours or minutes, as people say it.
pub fn ago(d: jiff::SignedDuration) -> String {
    let s = d.as_secs();
    if s >= 2 * 86_400 {
        format!("{} days", s / 86_400)
    } else if s >= 2 * 3600 {
        format!("{} hours", s / 3600)
    } else {
        format!("{} minutes", s / 60)
    }
}

/// `kubectl raum status`.
pub async fn status(
    target: &Target,
    policy: &str,
    all_namespaces: bool,
    out: &mut impl Write,
) -> Result<(), Error> {
    let meetings: Api<Meeting> = if all_namespaces {
        Api::all(target.client.clone())
    } else {
        Api::namespaced(target.client.clone(), &target.namespace)
    };
    let scope = if all_namespaces {
        "all namespaces".to_owned()
    } else {
        format!("namespace {}", target.namespace)
    };
    let list = meetings
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::api(format!("list Meetings in {scope}"), AUDITOR, e))?;
    let mut phases: BTreeMap<String, u32> = BTreeMap::new();
    let mut participants = 0;
    for m in &list.items {
        let st = m.status.as_ref();
        let phase = st
            .and_then(|s| s.phase)
            .map_or("Unknown", |p| p.as_str())
            .to_owned();
        *phases.entry(phase).or_default() += 1;
        participants += st.and_then(|s| s.participants).unwrap_or(0);
    }
    writeln!(out, "Meetings in {scope}: {}", list.items.len())?;
    let mut rows = vec![vec!["PHASE".to_owned(), "MEETINGS".into()]];
    rows.extend(phases.iter().map(|(p, n)| vec![p.clone(), n.to_string()]));
    if list.items.is_empty() {
        rows.truncate(0);
    }
    table(out, &rows)?;
    writeln!(out, "Participants now: {participants}")?;

    let rps: Api<RetentionPolicy> = Api::namespaced(target.client.clone(), &target.namespace);
    match rps.get_opt(policy).await {
        Ok(Some(rp)) => {
            let st = rp.status.unwrap_or_default();
            match st.last_run {
                Some(run) => writeln!(
                    out,
                    "Last pruning run: {} ({}; {} files deleted, {} rewritten, {} entries removed, {} kept for holds)",
                    run.finished
                        .map_or("unfinished".into(), |t| t.0.to_string()),
                    run.outcome.unwrap_or_else(|| "no outcome".into()),
                    run.files_deleted,
                    run.files_rewritten,
                    run.entries_removed,
                    run.entries_kept_for_holds
                )?,
                None => writeln!(out, "Last pruning run: none yet")?,
            }
        }
        Ok(None) => writeln!(
            out,
            "Last pruning run: no RetentionPolicy {}/{policy}",
            target.namespace
        )?,
        Err(e) => {
            return Err(Error::api(
                format!("read RetentionPolicy {}/{policy}", target.namespace),
                AUDITOR,
                e,
            ));
        }
    }
    match summary_in(&target.client, &target.namespace).await {
        Some(s) => match s.oldest() {
            Some(t) => writeln!(
                out,
                "Oldest access-log entry: {t} ({} old; {} day files)",
                ago(Timestamp::now().duration_since(t)),
                s.files.len()
            )?,
            None => writeln!(out, "Oldest access-log entry: the log is empty")?,
        },
        None => writeln!(
            out,
            "Oldest access-log entry: unknown (no summary from the gateway in {})",
            target.namespace
        )?,
    }
    Ok(())
}
