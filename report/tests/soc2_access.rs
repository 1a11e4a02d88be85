//! The CC6 sections against a real ClickHouse 18.16, on data stored the ways it arrives:
//! Tail and Logpush copies of one Worker decision in separate inserts, batches delivered
//! twice, merges stopped so no copy is merged away, history before the period, and
//! gatelog's own canaries. Every CC6 population's size equals a count this test takes with
//! its own SQL; every reconciliation passes; two runs give the same report, samples included;
//! and the access review sheet makes the round trip through `parse_sheet` and the store.
#![allow(clippy::unwrap_used)]

use gatelog_model::{AccessDecision, Decision, PrincipalType, Source, UnixMillis};
use gatelog_report::render::csv;
use gatelog_report::soc2::review::parse_sheet;
use gatelog_report::soc2::users::parse_users;
use gatelog_report::soc2::{NoProgress, PolicyFacts, RoleGrants, Soc2Input, generate};
use gatelog_report::table::{Report, Table};
use gatelog_store::reviews::ReviewRecorded;
use gatelog_store::testing::TestClickHouse;
use gatelog_store::{PartialCheck, Store, WriteBatch};
use std::collections::BTreeMap;
use std::time::Duration;

/// 2025-03-03T00:00:00Z; the period is that day.
const T0: i64 = 1_740_960_000_000;
const DAY: i64 = 86_400_000;
const MIN: i64 = 60_000;

const USERS: [&str; 5] =
    ["alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com", "erin@example.com"];

fn roles_of(principal: &str) -> Vec<String> {
    let roles: &[&str] = match principal {
        "alice@example.com" => &["admin", "analyst"],
        "bob@example.com" => &["analyst"],
        "carol@example.com" => &["admin"],
        "dave@example.com" => &["analyst", "finance"],
        "svc-etl" => &["etl"],
        _ => &[],
    };
    roles.iter().map(|r| (*r).to_owned()).collect()
}

fn event(id: String, time: i64, dataset: &str, principal: &str) -> AccessDecision {
    let mut d = AccessDecision::new(id, UnixMillis(time), dataset, Source::Logpush);
    d.principal = principal.to_owned();
    d.principal_type = match principal {
        "" => PrincipalType::Anonymous,
        "svc-etl" => PrincipalType::Service,
        _ => PrincipalType::User,
    };
    d.roles = roles_of(principal);
    d
}

/// The decisions, each as a list of copies (one or two), grouped in the inserts they are
/// stored by.
fn data() -> Vec<Vec<AccessDecision>> {
    let (mut first, mut second, mut third) = (Vec::new(), Vec::new(), Vec::new());
    // History: two principals seen in February (another month partition).
    for (k, p) in ["alice@example.com", "bob@example.com"].iter().enumerate() {
        let mut d = event(format!("old-{k}"), T0 - 10 * DAY + k as i64 * MIN, "workers_trace_events", p);
        d.resource = "clickhouse:analytics.t0".into();
        first.push(d);
    }
    // The proxy's decisions: Logpush copy in one insert, the Tail copy of a third of them in
    // another, some batches delivered again.
    for i in 0..300usize {
        let principal = match i % 7 {
            5 => "",
            6 => "svc-etl",
            k => USERS[k % 5],
        };
        let mut d = event(format!("ev-{i:04}"), T0 + i as i64 * 4 * MIN + 7, "workers_trace_events", principal);
        d.resource = match i % 5 {
            0 => "clickhouse:finance.payroll".into(),
            k => format!("clickhouse:analytics.t{k}"),
        };
        d.action = "select".into();
        d.auth_method = if principal == "svc-etl" { "cf_access_service_token" } else { "cf_access_jwt" }.into();
        d.client_ip = format!("192.0.2.{}", i % 30);
        d.country = ["DE", "US", "FR", "SG"][i % 4].into();
        d.asn = [3320, 15169, 9506][i % 3];
        (d.decision, d.status, d.policy) = if i % 11 == 0 {
            (Decision::Deny, 401, "identity".to_owned())
        } else if i % 4 == 0 && d.resource.contains("finance") && principal != "dave@example.com" {
            (Decision::Deny, 403, "ch-finance".to_owned())
        } else {
            (Decision::Allow, 200, "ch-read".to_owned())
        };
        if i % 3 == 0 {
            let mut tail = d.clone();
            tail.dataset = "tail".into();
            tail.source = Source::Tail;
            tail.time = UnixMillis(d.time.0 + 250);
            second.push(tail);
        }
        if i % 10 == 1 {
            third.push(d.clone());
        }
        first.push(d);
    }
    // The boundary: firewall events (every action), Gateway answers, Access logins.
    for i in 0..60usize {
        let mut d = event(format!("fw-{i:03}"), T0 + 3 * MIN + i as i64 * 17 * MIN, "firewall_events", "");
        d.decision = [Decision::Deny, Decision::Challenge, Decision::Log][i % 3];
        d.policy = format!("rule-{}", i % 4);
        d.reason = if i % 2 == 0 { "block bad bots (waf)".into() } else { "block by firewallrules".into() };
        d.client_ip = format!("198.51.100.{}", i % 25);
        d.country = ["CN", "RU", "US"][i % 3].into();
        d.asn = 4134 + (i as u32 % 2);
        d.status = 403;
        if i % 5 == 0 {
            third.push(d.clone());
        }
        first.push(d);
    }
    for i in 0..15usize {
        let mut d = event(format!("gw-{i:03}"), T0 + 5 * MIN + i as i64 * 60 * MIN, "gateway_http", USERS[i % 5]);
        d.roles = Vec::new();
        d.decision = if i % 3 == 0 { Decision::Allow } else { Decision::Deny };
        d.client_ip = format!("203.0.113.{}", i % 4);
        first.push(d);
    }
    for i in 0..12usize {
        let mut d =
            event(format!("ar-{i:03}"), T0 + 9 * MIN + i as i64 * 90 * MIN, "access_requests", USERS[(i + 2) % 5]);
        d.roles = Vec::new();
        d.action = "login".into();
        d.decision = if i % 3 == 0 { Decision::Deny } else { Decision::Allow };
        d.client_ip = format!("203.0.113.{}", 10 + i % 3);
        second.push(d);
    }
    // A new principal appearing mid-period, and gatelog's own canaries (never a population).
    let mut d = event("new-1".into(), T0 + 15 * 60 * MIN, "workers_trace_events", "frank@example.com");
    d.roles = vec!["admin".into()];
    d.resource = "clickhouse:analytics.t1".into();
    first.push(d);
    for i in 0..5usize {
        let mut c = event(format!("canary-{i}"), T0 + i as i64 * 60 * MIN, "gatelog_canary", "canary@gatelog");
        c.roles = vec!["admin".into()];
        c.decision = Decision::Deny;
        c.status = 401;
        c.policy = "identity".into();
        first.push(c);
    }
    vec![first, second, third]
}

async fn store_data(store: &Store) {
    let mut seq = 0u64;
    for insert in data() {
        let mut by_dataset: BTreeMap<String, Vec<AccessDecision>> = BTreeMap::new();
        for d in insert {
            by_dataset.entry(d.dataset.clone()).or_default().push(d);
        }
        let mut group = Vec::new();
        for (dataset, decisions) in by_dataset {
            seq += 1;
            let decisions: Vec<AccessDecision> = decisions
                .into_iter()
                .map(|mut d| {
                    d.spool_seq = seq;
                    d.received_at = UnixMillis(d.time.0 + 1000);
                    d
                })
                .collect();
            group.push((
                seq,
                WriteBatch {
                    batch_id: format!("b{seq:03}-{dataset}"),
                    dataset: dataset.clone(),
                    origin: format!("/v1/logpush/{dataset}"),
                    received_at: UnixMillis(T0 + DAY + seq as i64),
                    lines: decisions.len() as u64,
                    probes: 0,
                    bytes: 100,
                    sha256: format!("{seq:064x}"),
                    decisions,
                    raw: Vec::new(),
                    dead_letters: Vec::new(),
                    body: Vec::new(),
                    decision_lines: Vec::new(),
                },
            ));
        }
        let refs: Vec<(u64, &WriteBatch)> = group.iter().map(|(s, b)| (*s, b)).collect();
        store.write_batches(&refs, PartialCheck::Always).await.unwrap();
    }
}

fn policy() -> PolicyFacts {
    let grant = |role: &str, resources: &[&str]| RoleGrants {
        role: role.into(),
        resources: resources.iter().map(|r| (*r).to_owned()).collect(),
        actions: vec!["select".into()],
        limits: vec!["max_rows_to_read = 100000000".into()],
    };
    PolicyFacts {
        path: "/etc/gatelog/policy.toml".into(),
        sha256: "ab".repeat(32),
        text: "[roles.admin]\nresources = [\"clickhouse:*\"]\n".into(),
        issuers: vec!["cloudflare-access:example".into()],
        role_mappings: vec!["group data-admins → admin".into()],
        roles: vec![
            grant("admin", &["clickhouse:*"]),
            grant("analyst", &["clickhouse:analytics.*"]),
            grant("finance", &["clickhouse:finance.*"]),
            grant("auditor", &["https://audit.example.com/*"]),
        ],
    }
}

const USERS_CSV: &str = "principal,start,end\nalice@example.com,2025-01-01,\nbob@example.com,2025-03-03T12:00:00Z,\n\
     carol@example.com,2024-06-01,2025-03-03T18:00:00Z\ndave@example.com,,\n";

fn input(users: bool) -> Soc2Input {
    Soc2Input {
        period: gatelog_store::read::Period::new(UnixMillis(T0), UnixMillis(T0 + DAY)).unwrap(),
        as_of: UnixMillis(T0 + 2 * DAY),
        seed: "cc6-test-seed".into(),
        privileged_roles: vec!["admin".into()],
        policy: Some(policy()),
        users: users.then(|| parse_users("users.csv", USERS_CSV).unwrap()),
        detectors: Vec::new(),
        expected_datasets: Vec::new(),
        max_silence: Duration::from_secs(3600),
        parameters: vec![("seed".into(), "cc6-test-seed".into())],
        regenerate: "gatelog report soc2 --from 2025-03-03 --to 2025-03-04".into(),
        gatelog_version: "test".into(),
    }
}

fn table<'a>(report: &'a Report, id: &str) -> &'a Table {
    report.tables().find(|t| t.id == id).unwrap_or_else(|| panic!("no table {id}"))
}

/// A count with this test's own SQL: each `(tenant, event_id)` once among the rows of the
/// period matching `condition` (the copies of one event agree on every column a condition
/// here reads, and all lie inside the period).
async fn own_count(store: &Store, condition: &str) -> u64 {
    let sql = format!(
        "SELECT uniqExact(tenant, event_id) FROM {}.decisions WHERE time_ms >= {T0} AND time_ms < {} \
         AND dataset NOT IN ('gatelog', 'gatelog_canary') AND ({condition})",
        store.database(),
        T0 + DAY
    );
    store.client().query(&sql).fetch_one::<u64>().await.unwrap()
}

fn reconciled(t: &Table) {
    assert!(!t.ipe.reconciliations.is_empty(), "{}: no reconciliation", t.id);
    for r in &t.ipe.reconciliations {
        assert!(r.passed, "{}: {} failed: {} vs {}", t.id, r.name, r.expected, r.actual);
    }
}

#[tokio::test]
async fn cc6_populations_equal_independent_counts_and_the_report_is_reproducible() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let spill = tempfile::tempdir().unwrap();
    let db = store.database().to_owned();
    store.execute("SYSTEM", "decisions", &format!("SYSTEM STOP MERGES {db}.decisions")).await.unwrap();
    store_data(&store).await;
    let rows: u64 = store.client().query(&format!("SELECT count() FROM {db}.decisions")).fetch_one().await.unwrap();
    let events: u64 = store
        .client()
        .query(&format!("SELECT uniqExact(tenant, event_id) FROM {db}.decisions"))
        .fetch_one()
        .await
        .unwrap();
    assert!(rows > events + 100, "the data must hold unmerged copies: {rows} rows, {events} events");

    let report = generate(&store, &input(true), spill.path(), &NoProgress).await.unwrap();
    for id in [
        "cc6.1-privileged-decisions",
        "cc6.2-first-seen",
        "cc6.2-access-outside-window",
        "cc6.3-usage",
        "cc6.3-reviews",
        "cc6.6-boundary-actions",
        "cc6.6-denies-by-source",
        "cc6.6-auth-failures",
    ] {
        reconciled(table(&report, id));
    }
    let size = |id: &str| table(&report, id).rows.len() as u64;

    // CC6.1: the privileged population.
    let privileged = own_count(&store, "has(roles, 'admin')").await;
    assert_eq!(size("cc6.1-privileged-decisions"), privileged);
    assert!(privileged > 50, "{privileged}");
    assert_eq!(size("cc6.1-privileged-sample"), 25);
    assert_eq!(size("cc6.1-permission-matrix"), 4);

    // CC6.2: first seen (carol, dave, erin, frank; alice and bob were seen in February).
    let first_seen: u64 = store
        .client()
        .query(&format!(
            "SELECT count() FROM (SELECT principal, min(time_ms) AS m FROM {db}.decisions \
             WHERE principal != '' AND dataset NOT IN ('gatelog', 'gatelog_canary') AND time_ms < {} \
             GROUP BY principal HAVING m >= {T0})",
            T0 + DAY
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(size("cc6.2-first-seen"), first_seen);
    let seen: Vec<String> = table(&report, "cc6.2-first-seen").rows.iter().map(|r| r[0].display()).collect();
    assert!(seen.contains(&"frank@example.com".to_owned()) && !seen.contains(&"alice@example.com".to_owned()));
    // Access outside the windows: bob before noon, carol from 18:00, erin and frank not listed.
    let outside = own_count(
        &store,
        &format!(
            "principal_type = 'user' AND ((principal = 'bob@example.com' AND time_ms < {noon}) \
             OR (principal = 'carol@example.com' AND time_ms >= {six}) \
             OR principal NOT IN ('alice@example.com', 'bob@example.com', 'carol@example.com', 'dave@example.com'))",
            noon = T0 + 12 * 60 * MIN,
            six = T0 + 18 * 60 * MIN
        ),
    )
    .await;
    assert_eq!(size("cc6.2-access-outside-window"), outside);
    let findings: std::collections::BTreeSet<String> =
        table(&report, "cc6.2-access-outside-window").rows.iter().map(|r| r[14].display()).collect();
    assert_eq!(findings.into_iter().collect::<Vec<_>>(), ["after_end", "before_start", "not_in_export"]);

    // CC6.3: events per principal × role, and the grants nobody used.
    let own: Vec<(String, String, u64)> = store
        .client()
        .query(&format!(
            "SELECT principal, role, uniqExact(tenant, event_id) FROM {db}.decisions ARRAY JOIN roles AS role \
             WHERE time_ms >= {T0} AND time_ms < {} AND principal != '' AND dataset NOT IN ('gatelog', 'gatelog_canary') \
             GROUP BY principal, role ORDER BY principal, role",
            T0 + DAY
        ))
        .fetch_all()
        .await
        .unwrap();
    let usage: Vec<(String, String, u64)> = table(&report, "cc6.3-usage")
        .rows
        .iter()
        .map(|r| (r[0].display(), r[1].display(), r[2].display().parse().unwrap()))
        .collect();
    assert_eq!(usage, own);
    let unused: Vec<String> = table(&report, "cc6.3-grant-usage")
        .rows
        .iter()
        .filter(|r| r[5].display() == "true")
        .map(|r| r[0].display())
        .collect();
    assert_eq!(unused, ["auditor"]);
    assert_eq!(size("cc6.3-review-sheet"), own.len() as u64);

    // CC6.6: the boundary, denies by source, authentication failures.
    let boundary =
        own_count(&store, "dataset = 'firewall_events' OR (dataset = 'gateway_http' AND decision = 'deny')").await;
    let shown: u64 =
        table(&report, "cc6.6-boundary-actions").rows.iter().map(|r| r[4].display().parse::<u64>().unwrap()).sum();
    assert_eq!(shown, boundary);
    let sources: std::collections::BTreeSet<String> =
        table(&report, "cc6.6-boundary-actions").rows.iter().map(|r| r[3].display()).collect();
    assert_eq!(sources.into_iter().collect::<Vec<_>>(), ["", "firewallrules", "waf"]);
    let denies = own_count(&store, "decision = 'deny'").await;
    for r in &table(&report, "cc6.6-denies-by-source").rows {
        if r[1].display() == "(total)" {
            assert_eq!(r[2].display(), denies.to_string(), "{}", r[0].display());
        }
    }
    let auth = own_count(
        &store,
        "(dataset = 'access_requests' AND decision = 'deny') OR (status = 401 AND decision IN ('deny', 'error')) \
         OR (decision = 'deny' AND policy = 'identity')",
    )
    .await;
    assert_eq!(size("cc6.6-auth-failures"), auth);
    assert!(auth > 20, "{auth}");

    // An auditor re-draws each sample in ClickHouse with the SQL it records: the same events.
    for id in ["cc6.1-privileged-sample", "cc6.2-access-outside-window-sample", "cc6.6-auth-failures-sample"] {
        let sample = table(&report, id);
        let spec = sample.sample.as_ref().unwrap();
        let sql = format!("SELECT event_key FROM ({})", spec.redraw_sql);
        let redrawn: Vec<String> = store.client().query(&sql).fetch_all().await.unwrap();
        let drawn: Vec<String> = sample.rows.iter().map(|r| r[1].display()).collect();
        assert!(!drawn.is_empty(), "{id}");
        assert_eq!(redrawn, drawn, "{id}");
    }

    // The same data, the same report: samples, records and all.
    let again = generate(&store, &input(true), spill.path(), &NoProgress).await.unwrap();
    assert_eq!(table(&again, "cc6.1-privileged-sample"), table(&report, "cc6.1-privileged-sample"));
    let json = gatelog_report::render::json::render(&report).unwrap();
    assert_eq!(gatelog_report::render::json::render(&again).unwrap(), json);

    // Without users and policy: said so, no population.
    let mut bare = input(false);
    bare.policy = None;
    let without = generate(&store, &bare, spill.path(), &NoProgress).await.unwrap();
    assert!(without.tables().all(|t| t.id != "cc6.2-access-outside-window" && t.id != "cc6.3-grant-usage"));
    let cc62 = without.sections.iter().find(|s| s.id == "cc6.2").unwrap();
    assert!(cc62.paragraphs.iter().any(|p| p.contains("--users users.csv")), "{:?}", cc62.paragraphs);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn the_review_sheet_round_trips_through_import() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let spill = tempfile::tempdir().unwrap();
    store_data(&store).await;
    let report = generate(&store, &input(false), spill.path(), &NoProgress).await.unwrap();
    let sheet = csv::render(table(&report, "cc6.3-review-sheet")).unwrap();

    // A reviewer fills it in: remove what was never exercised, keep the rest.
    let mut reader = ::csv::Reader::from_reader(sheet.as_slice());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    writer.write_record(&header).unwrap();
    let mut removed = 0;
    for record in reader.records() {
        let mut row: Vec<String> = record.unwrap().iter().map(str::to_owned).collect();
        let remove = row[col("exercised")] == "false";
        removed += usize::from(remove);
        row[col("decision")] = if remove { "remove" } else { "keep" }.into();
        row[col("rationale")] = if remove { "never exercised in the period".into() } else { String::new() };
        row[col("reviewer")] = "carol@example.com".into();
        row[col("reviewed_at")] = "2025-03-04".into();
        writer.write_record(&row).unwrap();
    }
    let filled = writer.into_inner().unwrap();
    assert!(removed > 0, "the data has roles never exercised");
    let imported_at = UnixMillis(T0 + DAY / 2);
    let rows = parse_sheet("sheet.csv", &filled, imported_at).unwrap();
    let n = rows.len() as u64;
    assert_eq!(store.record_access_review(&rows).await.unwrap(), ReviewRecorded::Stored { rows: n });
    let again = parse_sheet("sheet.csv", &filled, UnixMillis(T0 + DAY / 2 + 1)).unwrap();
    assert_eq!(
        store.record_access_review(&again).await.unwrap(),
        ReviewRecorded::AlreadyStored { rows: n, imported_at_ms: imported_at.0 }
    );
    let stored: u64 = store
        .client()
        .query(&format!("SELECT count() FROM {}.access_reviews", store.database()))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(stored, n, "importing the same sheet twice stores it once");

    // A sheet with a removal without rationale and an undecided row is refused, by row and column.
    let text = String::from_utf8(filled).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[1] = lines[1].replacen(",keep,", ",,", 1).replacen(",remove,never exercised in the period,", ",remove,,", 1);
    let err = parse_sheet("bad.csv", lines.join("\n").as_bytes(), imported_at).unwrap_err().to_string();
    assert!(err.contains("bad.csv") && err.contains("line 2, column "), "{err}");

    // The report of the period lists the review.
    let report = generate(&store, &input(false), spill.path(), &NoProgress).await.unwrap();
    let reviews = table(&report, "cc6.3-reviews");
    assert_eq!(reviews.rows.len() as u64, n);
    reconciled(reviews);
    let cc63 = report.sections.iter().find(|s| s.id == "cc6.3").unwrap();
    assert!(cc63.paragraphs.iter().any(|p| p.contains(&rows[0].review_id) && p.contains("carol@example.com")));
    ch.stop().await.unwrap();
}
