//! The Grafana dashboard and the Prometheus alert rules in `contrib/` name
//! only series, labels and label values the daemon's `GET /metrics`
//! exposition has, so a renamed metric breaks this test rather than a
//! dashboard panel or an alert that silently never fires. promtool checks
//! the rules' syntax and behaviour (`.ci/run`); this checks their words.

use retentiond::metrics::{Gauges, Metrics};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

fn contrib(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Series name -> label name -> the values seen, from one exposition.
type Exposed = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The sample lines of an exposition, read as name{labels} value. Family
/// names from `# TYPE` count too (a family declared without samples, like
/// the next deadline when nothing is due, is still a name a query may use).
fn exposed(text: &str) -> Exposed {
    let mut out = Exposed::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declared.split_once(' ').unwrap();
            out.entry(name.to_owned()).or_default();
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    out.entry(format!("{name}{suffix}")).or_default();
                }
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let series = line.rsplit_once(' ').unwrap().0;
        let name = series.split('{').next().unwrap();
        let labels = out.entry(name.to_owned()).or_default();
        for (k, _, v) in matchers(&series[name.len()..]) {
            labels.entry(k).or_default().insert(v);
        }
    }
    out
}

/// `{a="x", b=~"y|z"}` (or an empty string) as (label, operator, value).
fn matchers(braces: &str) -> Vec<(String, String, String)> {
    let Some(inner) = braces.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else { return Vec::new() };
    let mut out = Vec::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let op_at = rest.find(['=', '!']).unwrap_or_else(|| panic!("no operator in {braces}"));
        let label = rest[..op_at].trim().to_owned();
        let after = &rest[op_at..];
        let op_len = if after.starts_with("=~") || after.starts_with("!~") || after.starts_with("!=") { 2 } else { 1 };
        let op = after[..op_len].to_owned();
        let quoted = after[op_len..].trim_start().strip_prefix('"').unwrap_or_else(|| panic!("unquoted in {braces}"));
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => value.push(chars.next().unwrap().1),
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated value in {braces}"),
            }
        };
        out.push((label, op, value));
        rest = quoted[end + 1..].trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// Every `retentiond_*` name in `text` with the `{...}` that follows it, if any.
fn uses(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = text[at..].find("retentiond_") {
        let start = at + found;
        let end =
            text[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(text.len(), |n| start + n);
        let braces = if text[end..].starts_with('{') {
            let close = text[end..].find('}').expect("a closing brace");
            &text[end..=end + close]
        } else {
            ""
        };
        out.push((text[start..end].to_owned(), braces.to_owned()));
        at = end;
    }
    out
}

/// Label names used in `by (...)`, `on (...)`, `without (...)`, `ignoring
/// (...)` and Grafana's `{{label}}` legends and alert templates.
fn grouping_labels(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for keyword in ["by (", "on (", "without (", "ignoring ("] {
        for part in text.split(keyword).skip(1) {
            let list = part.split(')').next().unwrap();
            out.extend(list.split(',').map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()));
        }
    }
    for part in text.split("{{").skip(1) {
        let inner = part.split("}}").next().unwrap().trim();
        if let Some(label) = inner.strip_prefix("$labels.") {
            out.insert(label.to_owned());
        } else if !inner.starts_with('$') {
            out.insert(inner.to_owned());
        }
    }
    out
}

/// An exposition with a sample in every family: one event, one executor
/// call (for the histogram's series) and a next deadline.
fn full_exposition() -> String {
    let m = Metrics::new();
    m.event("resource.created", "applied");
    m.executor_call("primary", "delete", true, Duration::from_millis(20));
    let mut g = Gauges::default();
    g.store.next_deadline = Some(retentiond::time::parse_rfc3339("2026-01-01T00:00:00Z").unwrap());
    m.render(&g)
}

/// What the dashboard asks Prometheus: every target's query and every
/// templating variable's query.
fn dashboard_queries(dashboard: &Value) -> String {
    let mut text = String::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            text.push_str(t["expr"].as_str().unwrap());
            text.push('\n');
            text.push_str(t["legendFormat"].as_str().unwrap_or(""));
            text.push('\n');
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str() {
            text.push_str(q);
            text.push('\n');
        }
    }
    text
}

/// Checks `text` against the exposition; returns the metric names it uses.
fn check_words(what: &str, text: &str, full: &Exposed, fixed: &Exposed) -> BTreeSet<String> {
    // Labels Prometheus adds to every series it scrapes, and a histogram's.
    let target_labels = ["job", "instance", "le"];
    let all_labels: BTreeSet<&str> =
        full.values().flat_map(|l| l.keys().map(String::as_str)).chain(target_labels).collect();
    let mut names = BTreeSet::new();
    for (name, braces) in uses(text) {
        let labels = full.get(&name).unwrap_or_else(|| panic!("{what}: {name} is not in the exposition"));
        for (label, op, value) in matchers(&braces) {
            if target_labels.contains(&label.as_str()) {
                continue;
            }
            assert!(labels.contains_key(&label), "{what}: {name} has no label {label} ({braces})");
            // Values are known where the daemon reports every one from zero
            // (outcomes, states, notice results...).
            if let (Some(known), "=") = (fixed.get(&name).and_then(|l| l.get(&label)), op.as_str()) {
                assert!(known.contains(&value), "{what}: {name}{{{label}=\"{value}\"}} never exists: {known:?}");
            }
        }
        names.insert(name);
    }
    for label in grouping_labels(text) {
        assert!(all_labels.contains(label.as_str()), "{what}: no metric has a label {label:?}");
    }
    names
}

#[test]
fn the_dashboard_and_the_rules_name_only_what_the_daemon_exposes() {
    let full = exposed(&full_exposition());
    let fixed = exposed(&Metrics::new().render(&Gauges::default()));
    let dashboard: Value = serde_json::from_str(&contrib("grafana/retentiond.json")).expect("the dashboard is JSON");
    let on_dashboard = check_words("dashboard", &dashboard_queries(&dashboard), &full, &fixed);
    let rules = contrib("prometheus/retentiond.rules.yml");
    let in_rules = check_words("rules", &rules, &full, &fixed);
    check_words("rule tests", &contrib("prometheus/retentiond.rules.test.yml"), &full, &fixed);

    // The safeguards and overdue privacy requests on both; every family the daemon declares on the
    // dashboard (a histogram through its buckets).
    for name in [
        "retentiond_guard_tripped",
        "retentiond_clock_anomaly",
        "retentiond_copies_stuck",
        "retentiond_dry_run",
        "retentiond_requests_overdue",
        "retentiond_request_oldest_due_timestamp_seconds",
    ] {
        assert!(on_dashboard.contains(name) && in_rules.contains(name), "{name}");
    }
    let text = full_exposition();
    let missing: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .filter(|family| !on_dashboard.contains(*family) && !on_dashboard.contains(&format!("{family}_bucket")))
        .collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}: add one to contrib/grafana/retentiond.json");
}

/// The checker itself: a misspelt metric, label or label value is caught.
#[test]
fn a_misspelt_name_label_or_value_is_caught() {
    let full = exposed(&full_exposition());
    let fixed = exposed(&Metrics::new().render(&Gauges::default()));
    let check = |text: &str| {
        let text = text.to_owned();
        let (full, fixed) = (full.clone(), fixed.clone());
        std::panic::catch_unwind(move || check_words("probe", &text, &full, &fixed)).is_ok()
    };
    assert!(check(r#"sum by (outcome) (rate(retentiond_deletions_total{outcome="stuck", job="x"}[5m]))"#));
    assert!(!check("retentiond_copies_stuk > 0"));
    assert!(!check(r#"retentiond_deletions_total{outcom="stuck"}"#));
    assert!(!check(r#"retentiond_deletions_total{outcome="stuk"}"#));
    assert!(!check(r#"sum by (stores) (retentiond_executor_calls_total)"#));
    assert!(!check("legend {{tenant}}"));
}

#[test]
fn every_alert_has_a_delay_a_severity_and_tells_what_to_do() {
    let rules = contrib("prometheus/retentiond.rules.yml");
    let alerts: Vec<&str> = rules.split("- alert: ").skip(1).collect();
    assert!(alerts.len() >= 8, "{} alerts", alerts.len());
    let mut names = BTreeSet::new();
    for alert in alerts {
        let name = alert.lines().next().unwrap().trim();
        assert!(names.insert(name), "{name} twice");
        for key in ["expr:", "for:", "severity:", "summary:", "description:"] {
            assert!(alert.contains(key), "{name} has no {key}");
        }
        let severity = alert.split("severity: ").nth(1).unwrap().lines().next().unwrap();
        assert!(["critical", "warning"].contains(&severity), "{name}: severity {severity}");
        let description = alert.split("description:").nth(1).unwrap();
        assert!(description.contains('`'), "{name}: its description names no command to run");
    }
    for name in [
        "RetentiondDown",
        "RetentiondCopiesStuck",
        "RetentiondGuardTripped",
        "RetentiondClockAnomaly",
        "RetentiondDeadlinesNotWorkedOff",
        "RetentiondAuditHeadStalled",
        "RetentiondPrivacyRequestOverdue",
        "RetentiondPrivacyRequestDueSoon",
    ] {
        assert!(names.contains(name), "no {name}: {names:?}");
    }
}

/// What Grafana needs to import the dashboard: unique panel ids, every
/// panel on the one data source variable, inside the 24-column grid, none
/// overlapping another.
#[test]
fn the_dashboard_imports_as_one_grid_on_a_chosen_data_source() {
    let d: Value = serde_json::from_str(&contrib("grafana/retentiond.json")).unwrap();
    assert_eq!(d["uid"], "retentiond");
    let vars: Vec<&str> =
        d["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(vars, ["datasource", "job", "instance"]);
    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap();
        assert!(ids.insert(p["id"].as_u64().unwrap()), "{title}: id twice");
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap());
        assert!(x + w <= 24 && w > 0 && h > 0, "{title}: {g}");
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "{title} overlaps another panel at {cell:?}");
        }
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            let expr = t["expr"].as_str().unwrap();
            assert!(expr.contains(r#"job=~"$job""#) && expr.contains(r#"instance=~"$instance""#), "{title}: {expr}");
        }
    }
}

/// Prometheus' own linter accepts the exposition the dashboard and rules
/// read (names, units, HELP, counter suffixes). It needs promtool: from
/// PATH, or where `contrib/check` caches it; skipped with a message
/// otherwise.
#[test]
fn promtool_accepts_the_exposition() {
    let cached = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .map(|c| c.join("retentiond/promtool"));
    let promtool = ["promtool".into()].into_iter().chain(cached).find(|p: &std::path::PathBuf| {
        std::process::Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success())
    });
    let Some(promtool) = promtool else {
        eprintln!("skipped: promtool is not available (contrib/check fetches it)");
        return;
    };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(full_exposition().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
}
