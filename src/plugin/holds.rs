//! `kubectl raum holds`, `hold add`, `hold lift`: the hold annotations of a
//! RetentionPolicy, written only after the grammar the pruner uses accepted them.

use std::collections::BTreeMap;
use std::io::Write;

use clap::Subcommand;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};

use super::{Error, HOLD_EDITOR, Target, table};
use crate::access_log::summary::{self, Summary};
use crate::api::RetentionPolicy;
use crate::api::holds::{HOLD_ALL, HOLD_PREFIX, Holds};

/// `kubectl raum hold ...`.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Place a hold: entries in [--from, --to] are kept until it is lifted.
    Add {
        /// The hold's id (letters, digits, - . _; e.g. incident-42).
        id: String,
        /// Its start: a date (a whole UTC day), an RFC 3339 time, or .. (open).
        #[arg(long, allow_hyphen_values = true)]
        from: String,
        /// Its end, inclusive: a date, an RFC 3339 time, or .. (open).
        #[arg(long, allow_hyphen_values = true)]
        to: String,
        /// Why (an incident, a ticket).
        #[arg(long)]
        reason: Option<String>,
        /// The RetentionPolicy.
        #[arg(long, default_value = "access-log")]
        policy: String,
        /// Replace a hold of the same id.
        #[arg(long)]
        replace: bool,
    },
    /// Lift a hold: what it covered is pruned at the next run, if expired.
    Lift {
        /// The hold's id.
        id: String,
        /// The RetentionPolicy.
        #[arg(long, default_value = "access-log")]
        policy: String,
    },
}

async fn policy(target: &Target, name: &str) -> Result<RetentionPolicy, Error> {
    let api: Api<RetentionPolicy> = Api::namespaced(target.client.clone(), &target.namespace);
    api.get(name).await.map_err(|e| {
        Error::api(
            format!("read RetentionPolicy {}/{name}", target.namespace),
            HOLD_EDITOR,
            e,
        )
    })
}

/// The access log's summary in `namespace`, if published and readable.
pub async fn summary_in(client: &kube::Client, namespace: &str) -> Option<Summary> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = api.get_opt(summary::CONFIG_MAP).await.ok()??;
    summary::from_config_map(&cm)
}

/// Expired entries in day files whose span meets the window `[from, to]` (after a
/// pruning run every expired entry left is a held one): what the hold keeps now, by
/// day file.
pub fn kept_by(
    s: &Summary,
    cutoff: Timestamp,
    meets: impl Fn(Timestamp, Timestamp) -> bool,
) -> u64 {
    s.files
        .iter()
        .filter_map(|f| Some((f.oldest?, f.newest?, f.entries)))
        .filter(|(oldest, _, _)| *oldest < cutoff)
        .filter(|(oldest, newest, _)| meets(*oldest, *newest))
        .map(|(_, _, n)| n)
        .sum()
}

/// `kubectl raum holds [POLICY]`.
pub async fn list(target: &Target, name: &str, out: &mut impl Write) -> Result<(), Error> {
    let rp = policy(target, name).await?;
    let annotations = rp.metadata.annotations.clone().unwrap_or_default();
    let summary = summary_in(&target.client, &target.namespace).await;
    let cutoff = rp
        .spec
        .max_age()
        .ok()
        .map(|m| Timestamp::now() - m.duration());
    let kept = |meets: &dyn Fn(Timestamp, Timestamp) -> bool| match (&summary, cutoff) {
        (Some(s), Some(c)) => kept_by(s, c, meets).to_string(),
        _ => "-".into(),
    };
    let mut rows = vec![vec![
        "ID".to_owned(),
        "WINDOW".into(),
        "REASON".into(),
        "PARSES".into(),
        "KEPT NOW".into(),
    ]];
    for (key, value) in &annotations {
        if key == HOLD_ALL {
            rows.push(vec![
                "all".into(),
                "everything".into(),
                value.trim().to_owned(),
                "yes".into(),
                kept(&|_, _| true),
            ]);
            continue;
        }
        let Some(id) = key.strip_prefix(HOLD_PREFIX) else {
            continue;
        };
        let one = Holds::from_pairs(&[(key, value)]);
        if let Some(bad) = one.invalid.first() {
            rows.push(vec![
                id.to_owned(),
                value.clone(),
                String::new(),
                format!("no: {} (holds everything)", bad.reason),
                kept(&|_, _| true),
            ]);
            continue;
        }
        let w = &one.windows[0];
        rows.push(vec![
            id.to_owned(),
            w.interval.clone(),
            w.reason.clone().unwrap_or_default(),
            "yes".into(),
            kept(&|from, to| w.overlaps(from, to + SignedDuration::from_millis(1))),
        ]);
    }
    if rows.len() == 1 {
        writeln!(
            out,
            "No holds on RetentionPolicy {}/{name}.",
            target.namespace
        )?;
        return Ok(());
    }
    table(out, &rows)?;
    if summary.is_none() {
        writeln!(
            out,
            "(KEPT NOW: no access-log summary from the gateway to count with)"
        )?;
    }
    Ok(())
}

/// An id as an annotation key's name part allows (at most 63 characters, letters,
/// digits, `-`, `_`, `.`, alphanumeric at both ends).
fn valid_id(id: &str) -> bool {
    let ok = |c: u8| c.is_ascii_alphanumeric();
    !id.is_empty()
        && id.len() <= 63
        && id.bytes().all(|c| ok(c) || matches!(c, b'-' | b'_' | b'.'))
        && ok(id.as_bytes()[0])
        && ok(id.as_bytes()[id.len() - 1])
}

/// The annotation `hold add` writes, or why it refuses.
pub fn annotation(
    id: &str,
    from: &str,
    to: &str,
    reason: Option<&str>,
) -> Result<(String, String), Error> {
    if !valid_id(id) {
        return Err(Error::Invalid(format!(
            "{id:?} cannot be a hold's id: use at most 63 letters, digits, - _ or ., starting and ending with a letter or digit"
        )));
    }
    if let Some(r) = reason
        && r.contains(['\n', '\r'])
    {
        return Err(Error::Invalid("the reason must be one line".into()));
    }
    let key = format!("{HOLD_PREFIX}{id}");
    let value = match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!("{}/{}; {r}", from.trim(), to.trim()),
        None => format!("{}/{}", from.trim(), to.trim()),
    };
    // The pruner's own grammar decides, before anything is written.
    let parsed = Holds::from_pairs(&[(&key, &value)]);
    if let Some(bad) = parsed.invalid.first() {
        return Err(Error::Invalid(format!(
            "the hold was not written: {}",
            bad.reason
        )));
    }
    Ok((key, value))
}

/// `kubectl raum hold add|lift`.
pub async fn act(target: &Target, action: Action, out: &mut impl Write) -> Result<(), Error> {
    let (name, key, value, verb) = match &action {
        Action::Add {
            id,
            from,
            to,
            reason,
            policy,
            replace,
        } => {
            let (key, value) = annotation(id, from, to, reason.as_deref())?;
            let rp = self::policy(target, policy).await?;
            let existing = rp.metadata.annotations.unwrap_or_default();
            if existing.contains_key(&key) && !replace {
                return Err(Error::Invalid(format!(
                    "RetentionPolicy {}/{policy} already has hold {id:?} ({}); lift it first or pass --replace",
                    target.namespace, existing[&key]
                )));
            }
            (policy.clone(), key, Some(value), "placed")
        }
        Action::Lift { id, policy } => {
            let key = format!("{HOLD_PREFIX}{id}");
            let rp = self::policy(target, policy).await?;
            if !rp
                .metadata
                .annotations
                .unwrap_or_default()
                .contains_key(&key)
            {
                return Err(Error::NotFound(format!(
                    "RetentionPolicy {}/{policy} has no hold {id:?}",
                    target.namespace
                )));
            }
            (policy.clone(), key, None, "lifted")
        }
    };
    // A merge patch of the one annotation: what `kubectl annotate` sends, and all the
    // hold editors' admission policy lets through.
    let mut annotations = BTreeMap::new();
    annotations.insert(key.clone(), value.clone());
    let patch = serde_json::json!({"metadata": {"annotations": annotations}});
    let api: Api<RetentionPolicy> = Api::namespaced(target.client.clone(), &target.namespace);
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            Error::api(
                format!(
                    "change the holds of RetentionPolicy {}/{name}",
                    target.namespace
                ),
                HOLD_EDITOR,
                e,
            )
        })?;
    match value {
        Some(v) => writeln!(out, "hold {key} {verb}: {v}")?,
        None => writeln!(out, "hold {key} {verb}")?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::summary::FileSummary;

    #[test]
    fn holds_are_checked_before_they_are_written() {
        assert_eq!(
            annotation(
                "incident-42",
                "2026-11-01",
                "2026-11-03",
                Some("DDoS, SEC-42")
            )
            .unwrap(),
            (
                "hold.raum.dev/incident-42".to_owned(),
                "2026-11-01/2026-11-03; DDoS, SEC-42".to_owned()
            )
        );
        assert_eq!(
            annotation("open", "2026-11-01T08:00:00Z", "..", None)
                .unwrap()
                .1,
            "2026-11-01T08:00:00Z/.."
        );
        for (id, from, to, reason, says) in [
            ("x", "2026-11-31", "2026-12-01", None, "not a date"),
            (
                "x",
                "2026-11-03",
                "2026-11-01",
                None,
                "ends before it starts",
            ),
            ("x", "", "2026-11-01", None, "empty"),
            ("x", "yesterday", "..", None, "not"),
            ("", "2026-11-01", "..", None, "id"),
            ("-x", "2026-11-01", "..", None, "id"),
            ("a/b", "2026-11-01", "..", None, "id"),
            (&"x".repeat(64), "2026-11-01", "..", None, "id"),
            ("x", "2026-11-01", "..", Some("two\nlines"), "one line"),
        ] {
            let e = annotation(id, from, to, reason).unwrap_err().to_string();
            assert!(e.contains(says), "{id} {from} {to}: {e}");
        }
    }

    #[test]
    fn a_hold_keeps_the_expired_entries_of_the_days_it_meets() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let file = |day: &str, n| FileSummary {
            name: format!("access-{day}.gw.jsonl"),
            entries: n,
            oldest: Some(t(&format!("{day}T08:00:00Z"))),
            newest: Some(t(&format!("{day}T20:00:00Z"))),
            lines_with_other_fields: 0,
        };
        let s = Summary {
            files: vec![
                file("2026-09-01", 3),
                file("2026-09-02", 5),
                file("2026-12-01", 7),
            ],
            ..Summary::default()
        };
        let cutoff = t("2026-10-10T00:00:00Z");
        let window = |from: &str, to: &str| {
            let (a, b) = (t(from), t(to));
            move |x: Timestamp, y: Timestamp| x <= b && y >= a
        };
        assert_eq!(
            kept_by(
                &s,
                cutoff,
                window("2026-09-02T00:00:00Z", "2026-09-02T23:59:59Z")
            ),
            5
        );
        assert_eq!(
            kept_by(
                &s,
                cutoff,
                window("2026-08-01T00:00:00Z", "2026-12-31T00:00:00Z")
            ),
            8,
            "unexpired days are not counted"
        );
        assert_eq!(
            kept_by(
                &s,
                cutoff,
                window("2026-07-01T00:00:00Z", "2026-07-02T00:00:00Z")
            ),
            0
        );
    }
}
