//! A generative fuzz of the identifier and quoting grammar, judged by ClickHouse itself.
//!
//! Queries are built from a grammar of names (plain, quoted, escaped, doubled quotes,
//! comments inside qualified names, other cases), IN forms, functions, table functions,
//! CTEs, subqueries and unions, then laced with comments and whitespace, and some mutated
//! byte by byte. The guard and the policy decide each one for a role that may read and write
//! `analytics.*` except `analytics.salaries`. What they allow is run, as the proxy would
//! forward it, against ClickHouse, which must then have touched only allowed tables:
//! - on 18.16 (debug log): every MergeTree table ClickHouse logs reading for that query id
//!   is one the guard reported, and never a denied one; no answer holds a denied marker;
//! - in chdb (26.9), where the denied tables are views that fail when read and a file in
//!   the server's user files holds a marker: no answer holds a marker, no error says a
//!   denied table was read;
//! - afterwards the denied tables hold exactly what they held.
//!
//! Bounded: `GATELOG_FUZZ_CASES` cases (default 10,000) from `GATELOG_FUZZ_SEED`.

#![allow(clippy::unwrap_used)]

#[path = "support/chdb.rs"]
mod chdb;
#[path = "support/guard_env.rs"]
mod guard_env;
mod support;

use gatelog_proxy::ProxyConfig;
use gatelog_proxy::policy::Policy;
use guard_env::{DENIED, exec, marker_in};
use std::collections::BTreeSet;
use std::time::Instant;

const ROLE: &str = r#"
[roles.fuzzer]
allow = ["analytics.*"]
deny = ["analytics.salaries"]
statements = ["select", "show", "describe", "insert"]
table_functions = ["numbers", "view"]
default_database = "analytics"
"#;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const ALLOWED_TABLES: &[&str] = &[
    "events",
    "analytics.events",
    "`events`",
    "\"events\"",
    "`analytics`.`events`",
    "analytics . events",
    "analytics/**/.events",
    "users",
    "analytics.users",
    "scratch",
];
const DENIED_TABLES: &[&str] = &[
    "salaries",
    "analytics.salaries",
    "`salaries`",
    "\"salaries\"",
    "`analytics`.\"salaries\"",
    "analytics -- c\n.salaries",
    "analytics/* c */.`salaries`",
    "secret.vault",
    "`secret`.`vault`",
];
const TRICKY_TABLES: &[&str] = &[
    "`sal\\x61ries`",
    "\"sal\\x61ries\"",
    "analytics.`sal\\x61ries`",
    "`salaries\\N`",
    "`\\salaries`",
    "`sal\\aries`",
    "`s\\141laries`",
    "`sal``aries`",
    "\"salaries\"\"\"",
    "`salaries `",
    "SALARIES",
    "Analytics.salaries",
    "`analytics.salaries`",
    "`secret`.`v\\x61ult`",
    "sal\u{430}ries",
    "s",
];
const CTE_NAMES: &[&str] = &["s", "salaries", "events", "`salaries`", "vault"];
const COLUMNS: &[&str] = &[
    "user_id",
    "amount",
    "*",
    "count()",
    "max(amount)",
    "toString(user_id)",
    "1",
    "user_id div",
    "amount mod",
    "user_id regexp",
    "amount AS settings",
    "`dictGet`('d', 'a', toUInt64(1)) AS x",
];
const IN_OPERATORS: &[&str] = &["IN", "NOT IN", "GLOBAL IN", "GLOBAL NOT IN", "in", "not in", "global in"];
const SET_FUNCTIONS: &[&str] = &[
    "in",
    "notIn",
    "globalIn",
    "globalNotIn",
    "nullIn",
    "notNullIn",
    "globalNullIn",
    "globalNotNullIn",
    "inIgnoreSet",
    "`in`",
    "\"notIn\"",
    "IN",
    "NULLIN",
];
const FUNCTIONS: &[&str] = &[
    "dictGetUInt64('d', 'a', toUInt64(1))",
    "`dictGet`('d', 'a', 1)",
    "joinGet('analytics.salaries', 'amount', toUInt64(1))",
    "hasColumnInTable('analytics', 'salaries', 'amount')",
    "getSetting('max_threads')",
    "file('x')",
    "toString(1)",
    "length('abc')",
    "`length`('x')",
    "\"lower\"('X')",
    "position('a' IN 'abc')",
    "arrayMap(file, ['trap.txt'])",
    "arrayMap(`file`, ['trap.txt'])",
    "arrayMap((\"file\"), ['trap.txt'])[1]",
    "arrayMap(upper, ['trap.txt'])",
];
const TABLE_FUNCTIONS: &[&str] = &[
    "numbers(2)",
    "merge('analytics', '^sal')",
    "merge(analytics, 'sal')",
    "remote('127.0.0.1', analytics, salaries)",
    "cluster('test_shard_localhost', analytics.salaries)",
    "url('http://127.0.0.1:1/x', CSV, 'a String')",
    "catBoostPool('a', 'b')",
];
const STRINGS: &[&str] = &["'x'", "'a\\'b'", "'--'", "'/*'", "'\\\\'", "'it''s'", "' FROM salaries '", "'`'"];
const FILLERS: &[&str] =
    &[" ", "\n", "\t", " /* c */ ", " -- c\n", "/**/", " /* /* */ ", "\r", " # c\n", "\u{a0}", "\u{b}", "\u{c}", "  "];
const MUTATIONS: &[&str] = &["'", "\"", "`", "\\", "/*", "*/", "--", "\n", ";", ")", "(", ",", "$$", "{", "#", "."];

struct Gen {
    rng: Rng,
}

impl Gen {
    fn table(&mut self) -> String {
        match self.rng.below(10) {
            0..=4 => self.rng.pick(ALLOWED_TABLES).into(),
            5..=7 => self.rng.pick(DENIED_TABLES).into(),
            _ => self.rng.pick(TRICKY_TABLES).into(),
        }
    }

    fn table_expr(&mut self, depth: usize) -> String {
        let t = match self.rng.below(10) {
            0..=5 => self.table(),
            6 if depth > 0 => format!("({})", self.select(depth - 1)),
            7 => self.rng.pick(TABLE_FUNCTIONS).into(),
            8 if depth > 0 => format!("view({})", self.select(depth - 1)),
            _ => self.rng.pick(CTE_NAMES).into(),
        };
        if self.rng.chance(30) { format!("{t} AS {}", self.rng.pick(&["e", "s", "salaries", "x"])) } else { t }
    }

    fn predicate(&mut self, depth: usize) -> String {
        match self.rng.below(10) {
            0 | 1 => format!("user_id {} {}", self.rng.pick(IN_OPERATORS), self.name_or_cte()),
            2 if depth > 0 => format!("user_id {} ({})", self.rng.pick(IN_OPERATORS), self.select(depth - 1)),
            3 => format!("{}(user_id, {})", self.rng.pick(SET_FUNCTIONS), self.name_or_cte()),
            4 => format!("user_id {} ({})", self.rng.pick(IN_OPERATORS), self.name_or_cte()),
            5 => format!("amount > {}", self.rng.pick(FUNCTIONS)),
            6 => format!("{} = {}", self.rng.pick(STRINGS), self.rng.pick(STRINGS)),
            7 if depth > 0 => format!("{} AND NOT {}", self.predicate(depth - 1), self.predicate(depth - 1)),
            8 if depth > 0 => format!("EXISTS ({})", self.select(depth - 1)),
            _ => format!("position(toString(user_id) IN {}) > 0", self.name_or_cte()),
        }
    }

    fn name_or_cte(&mut self) -> String {
        if self.rng.chance(20) { self.rng.pick(CTE_NAMES).into() } else { self.table() }
    }

    fn column(&mut self, depth: usize) -> String {
        match self.rng.below(10) {
            0 if depth > 0 => format!("({})", self.select(depth - 1)),
            1 => format!("(SELECT max(amount) FROM {})", self.table()),
            2 => self.rng.pick(FUNCTIONS).into(),
            _ => self.rng.pick(COLUMNS).into(),
        }
    }

    fn select(&mut self, depth: usize) -> String {
        let mut q = String::new();
        if depth > 0 && self.rng.chance(25) {
            q.push_str(&format!("WITH {} AS ({}) ", self.rng.pick(CTE_NAMES), self.select(depth - 1)));
        }
        let column = self.column(depth);
        q.push_str(&format!("SELECT {column} FROM {}", self.table_expr(depth)));
        match self.rng.below(10) {
            0 => q.push_str(&format!(" JOIN {} USING (user_id)", self.table_expr(depth))),
            1 => q.push_str(&format!(", {}", self.table_expr(depth))),
            2 => q.push_str(" LEFT ARRAY JOIN [1, 2] AS a"),
            3 => q.push_str(&format!(
                " ANY LEFT JOIN {} ON user_id = s.user_id AND {}",
                self.table_expr(depth),
                self.predicate(0)
            )),
            4 => q.push_str(&format!(" ARRAY JOIN (SELECT groupArray(user_id) FROM {}) AS a", self.table())),
            _ => {}
        }
        if self.rng.chance(60) {
            q.push_str(&format!(" WHERE {}", self.predicate(depth)));
        }
        match self.rng.below(8) {
            0 => q.push_str(&format!(" GROUP BY user_id HAVING {}", self.predicate(0))),
            1 => q.push_str(&format!(" ORDER BY {} LIMIT 3", self.predicate(0))),
            2 => q.push_str(&format!(" LIMIT 1 BY {}", self.predicate(0))),
            _ => {}
        }
        if depth > 0 && self.rng.chance(15) {
            q.push_str(&format!(" UNION ALL {}", self.select(depth - 1)));
        }
        q
    }

    fn statement(&mut self) -> String {
        let sql = match self.rng.below(20) {
            0 => format!("DESCRIBE TABLE {}", self.table()),
            1 => format!("SHOW CREATE TABLE {}", self.table()),
            2 => format!("EXISTS TABLE {}", self.table()),
            3 => {
                format!("INSERT INTO {} VALUES ({}, {})", self.table(), self.rng.pick(STRINGS), self.rng.pick(COLUMNS))
            }
            4 => format!("INSERT INTO {} SELECT user_id, amount FROM {}", self.table(), self.table()),
            5 => format!("INSERT INTO {} FORMAT TSV\n1\t2\n", self.table()),
            6 => format!("INSERT INTO {} FORMAT Values (1, {})", self.table(), self.column(1)),
            7 => format!("INSERT INTO {} (user_id) VALUES ({})", self.table(), self.column(1)),
            _ => self.select(2),
        };
        self.lace(sql)
    }

    /// Swaps some spaces for comments and odd whitespace, and mutates some queries.
    fn lace(&mut self, sql: String) -> String {
        let mut out = String::with_capacity(sql.len() + 16);
        for (i, part) in sql.split(' ').enumerate() {
            if i > 0 {
                out.push_str(if self.rng.chance(8) { self.rng.pick(FILLERS) } else { " " });
            }
            out.push_str(part);
        }
        if self.rng.chance(20) {
            for _ in 0..=self.rng.below(2) {
                let mut at = self.rng.below(out.len() + 1);
                while !out.is_char_boundary(at) {
                    at -= 1;
                }
                if self.rng.chance(70) {
                    out.insert_str(at, self.rng.pick(MUTATIONS));
                } else if at < out.len() {
                    out.remove(at);
                }
            }
        }
        out
    }
}

struct Allowed {
    id: String,
    sql: String,
    forwarded: String,
    tables: BTreeSet<String>,
}

/// The generated cases and what the guard allowed of them.
fn generate() -> (usize, Vec<Allowed>, u64) {
    let cases: usize = std::env::var("GATELOG_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let seed: u64 =
        std::env::var("GATELOG_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x9e37_79b9_7f4a_7c15);
    let config = ProxyConfig::parse(ROLE).unwrap();
    let policy = Policy::compile_without_secrets(&config).unwrap();
    let roles = vec!["fuzzer".to_owned()];
    // splitmix64 of the seed: every seed a distinct, non-zero state.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let mut g = Gen { rng: Rng((z ^ (z >> 31)) | 1) };
    let mut allowed = Vec::new();
    for i in 0..cases {
        let sql = g.statement();
        let outcome = policy.check_sql(&roles, "analytics", &sql);
        if let Ok((a, v)) = outcome.as_ref()
            && v.allowed
        {
            let tables = a.tables.iter().map(|t| t.to_string()).collect();
            allowed.push(Allowed { id: format!("fuzz-{seed:x}-{i}"), sql, forwarded: a.sql.clone(), tables });
        }
    }
    (cases, allowed, seed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_guard_allows_touches_only_allowed_tables_on_clickhouse_18_16() {
    let started = Instant::now();
    let (cases, allowed, seed) = generate();
    let client = support::http_client();
    let mut ch = guard_env::clickhouse(&client).await;
    let base = ch.url();
    let count_denied = "SELECT (SELECT count() FROM analytics.salaries), (SELECT count() FROM secret.vault)";
    let before = exec(&client, &format!("{base}/"), count_denied).await.unwrap();
    let mut failures = Vec::new();
    let mut answered = 0;
    for a in &allowed {
        let url = format!(
            "{base}/?database=analytics&query_id={}&max_execution_time=5&max_result_rows=1000&result_overflow_mode=break",
            a.id
        );
        if let Ok(body) = exec(&client, &url, &a.forwarded).await {
            answered += 1;
            if let Some(m) = marker_in(&body) {
                failures.push(format!("{:?}: the answer holds the marker {m}", a.sql));
            }
        }
    }
    let log = guard_env::server_log(&ch);
    let read = guard_env::tables_read(&log);
    for a in &allowed {
        for table in read.get(&a.id).into_iter().flatten() {
            if DENIED.contains(&table.as_str()) || !a.tables.contains(table) {
                failures.push(format!(
                    "{:?} (forwarded {:?}) read {table}; the guard saw {:?}",
                    a.sql, a.forwarded, a.tables
                ));
            }
        }
    }
    let after = exec(&client, &format!("{base}/"), count_denied).await.unwrap();
    let ran = allowed.iter().filter(|a| read.contains_key(&a.id)).count();
    println!(
        "guard fuzz on 18.16: seed {seed:#x}, {cases} cases, {} allowed ({answered} answered, {ran} read tables), {} denied, {} violations, {:.1}s",
        allowed.len(),
        cases - allowed.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    ch.stop().await.unwrap();
    assert_eq!(before, after, "a denied table changed");
    assert!(allowed.len() * 10 >= cases, "the fuzz must exercise ClickHouse: only {} allowed", allowed.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn what_the_guard_allows_touches_only_allowed_tables_in_chdb_26_9() {
    let Some(python) = chdb::python() else { return };
    let started = Instant::now();
    let (cases, allowed, seed) = generate();
    let queries: Vec<serde_json::Value> =
        allowed.iter().map(|a| serde_json::json!({"name": a.sql, "sql": a.forwarded})).collect();
    let job = serde_json::json!({"schema": guard_env::schema(), "queries": queries});
    let results = chdb::run(&python, &guard_env::corpus_dir().join("fuzz_chdb.py"), &job);
    let failures: Vec<String> =
        results.iter().filter(|r| r["leak"] == true).map(|r| format!("{}: {}", r["name"], r["detail"])).collect();
    let ran = results.iter().filter(|r| r["ok"] == true).count();
    println!(
        "guard fuzz in chdb: seed {seed:#x}, {cases} cases, {} allowed ({ran} answered), {} denied, {} violations, {:.1}s",
        allowed.len(),
        cases - allowed.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(results.len(), allowed.len() + 1, "chdb answered every query and the final check");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
