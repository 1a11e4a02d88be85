//! The guard's unit tests: what it reads as tables, functions and kinds, what it refuses, and
//! what it forwards. The attack and ordinary-SQL corpora run in `tests/` against ClickHouse.

use super::*;

fn tables(sql: &str) -> Vec<String> {
    match analyze(sql, "analytics") {
        Ok(a) => a.tables.iter().map(|t| t.to_string()).collect(),
        Err(e) => panic!("{sql}: {e}"),
    }
}

fn refused(sql: &str) -> Rejection {
    match analyze(sql, "analytics") {
        Ok(a) => panic!("{sql} was allowed: {a:?}"),
        Err(e) => e,
    }
}

#[test]
fn finds_tables_everywhere() {
    assert_eq!(tables("SELECT count() FROM events"), ["analytics.events"]);
    assert_eq!(tables("SELECT * FROM a.x JOIN b.y USING (id) WHERE id IN (SELECT id FROM c.z)"), ["a.x", "b.y", "c.z"]);
    assert_eq!(tables("SELECT 1 FROM a.x UNION ALL SELECT 2 FROM b.y"), ["a.x", "b.y"]);
    assert_eq!(tables("WITH t AS (SELECT * FROM a.x) SELECT * FROM t"), ["a.x"]);
    assert_eq!(tables("SELECT * FROM (SELECT * FROM a.x) AS s"), ["a.x"]);
}

#[test]
fn in_with_a_name_reads_a_table() {
    for sql in [
        "SELECT 1 FROM events WHERE id IN salaries",
        "SELECT 1 FROM events WHERE id NOT IN salaries",
        "SELECT 1 FROM events WHERE id GLOBAL IN salaries",
        "SELECT 1 FROM events WHERE id global not in (salaries)",
        "SELECT 1 FROM events WHERE id IN ((salaries))",
        "SELECT 1 FROM events WHERE id IN (salaries AS s)",
        "SELECT in(1, salaries)",
        "SELECT `notIn`(1, (salaries))",
        "SELECT globalNotNullInIgnoreSet(1, salaries)",
        "SELECT NULLIN(1, salaries)",
        "SELECT arrayMap(x -> x IN salaries, [1])",
        "SELECT position(1 IN salaries, 1)",
        "SELECT `position`(1 IN salaries)",
        // 18.16 reads `a IN b` here, and reads `b` when `a` is a key column.
        "SELECT count() FROM events WHERE position(toString(user_id) IN salaries) > 0",
    ] {
        assert!(tables(sql).contains(&"analytics.salaries".to_owned()), "{sql}: {:?}", tables(sql));
    }
    assert_eq!(tables("SELECT 1 IN analytics.salaries"), ["analytics.salaries"]);
    // Columns, tuples and expressions are no tables.
    for sql in [
        "SELECT 1 FROM events WHERE id IN (a, b)",
        "SELECT 1 FROM events WHERE id IN tuple(a)",
        "SELECT 1 FROM events WHERE id IN [a]",
        "SELECT 1 FROM events WHERE id IN (a + 1)",
        "SELECT 1 FROM events WHERE id IN (SELECT 1)",
        "SELECT position(name, 'x') FROM events",
    ] {
        assert_eq!(tables(sql), ["analytics.events"], "{sql}");
    }
}

#[test]
fn cte_names_are_scoped_as_narrowly_as_clickhouse_scopes_them() {
    // `s` outside the derived table is a real table, not the inner CTE.
    assert_eq!(tables("SELECT * FROM (WITH s AS (SELECT 1) SELECT * FROM s) AS q, s"), ["analytics.s"]);
    // Inside its own body and in table function arguments, a CTE name is the table.
    assert_eq!(tables("WITH s AS (SELECT * FROM s) SELECT * FROM s"), ["analytics.s"]);
    assert_eq!(tables("WITH s AS (SELECT 1) SELECT * FROM view(SELECT * FROM s)"), ["analytics.s"]);
    // Another UNION branch does not see it; a subquery and IN do.
    assert_eq!(tables("WITH s AS (SELECT 1) SELECT 1 UNION ALL SELECT * FROM s"), ["analytics.s"]);
    assert!(tables("WITH s AS (SELECT 1) SELECT * FROM (SELECT * FROM s) WHERE 1 IN s").is_empty());
    // Later CTEs see earlier ones, not the other way round.
    assert!(tables("WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b").is_empty());
    assert_eq!(tables("WITH b AS (SELECT * FROM a), a AS (SELECT 1) SELECT * FROM b"), ["analytics.a"]);
    // An expression alias is no CTE; a qualified name never is.
    assert_eq!(tables("WITH (SELECT 1) AS s SELECT * FROM s"), ["analytics.s"]);
    assert_eq!(tables("WITH s AS (SELECT 1) SELECT * FROM analytics.s"), ["analytics.s"]);
    // The IN functions other than in/notIn/globalIn/globalNotIn read the table on servers
    // with the old analyzer.
    assert!(tables("WITH s AS (SELECT 1) SELECT in(1, s), globalNotIn(1, s), 1 IN s").is_empty());
    assert_eq!(tables("WITH s AS (SELECT 1) SELECT nullIn(1, s)"), ["analytics.s"]);
    assert_eq!(tables("WITH s AS (SELECT 1) SELECT `IN`(1, s)"), ["analytics.s"]);
}

#[test]
fn dotted_quoted_table_names_are_refused() {
    for sql in ["SELECT * FROM `analytics.salaries`", "SELECT 1 IN `analytics.salaries`", "DESCRIBE `a.b`.c"] {
        assert!(matches!(refused(sql), Rejection::UnsupportedTable(_)), "{sql}");
    }
    assert_eq!(tables("SELECT `a.b` FROM events"), ["analytics.events"]);
}

#[test]
fn kinds_and_functions() {
    let a = analyze("SELECT count() FROM numbers(10)", "default").unwrap();
    assert_eq!(a.kind, StatementKind::Select);
    assert!(a.tables.is_empty());
    assert_eq!(a.table_functions, ["numbers"]);
    assert_eq!(analyze("INSERT INTO a.x VALUES (1)", "d").unwrap().kind, StatementKind::Insert);
    assert_eq!(analyze("DROP TABLE a.x", "d").unwrap().kind, StatementKind::Drop);
    assert_eq!(analyze("EXISTS TABLE a.x", "d").unwrap().kind, StatementKind::Show);
    assert_eq!(analyze("SELECT 1;", "d").unwrap().sql, "SELECT 1");
    assert_eq!(refused("SELECT 1; SELECT 2"), Rejection::MultipleStatements);
    assert!(matches!(refused("SELECT * FROM url('http://x', CSV, 'a String')"), Rejection::DangerousTableFunction(_)));
    assert!(matches!(refused("SELECT * FROM merge('analytics', '^sal')"), Rejection::DangerousTableFunction(_)));
    assert_eq!(refused("SELECT 1 SETTINGS max_rows_to_read = 0"), Rejection::Settings);
    assert_eq!(refused("SELECT 1 INTO OUTFILE 'x'"), Rejection::IntoOutfile);
    assert!(analyze("SELECT 'a#b', `c$` FROM t FORMAT JSON", "d").is_ok());
    assert!(matches!(refused("SELECT 1 FORMAT Template"), Rejection::Format(_)));
    let show = analyze("SHOW TABLES FROM system", "d").unwrap();
    assert_eq!((show.kind, show.tables[0].to_string()), (StatementKind::Show, "system.*".to_owned()));
    assert_eq!(tables("SHOW TABLES"), ["analytics.*"]);
    assert_eq!(tables("DESCRIBE TABLE a.x"), ["a.x"]);
    assert_eq!(analyze("SELECT 1 FORMAT JSON", "d").unwrap().format.as_deref(), Some("JSON"));
    for f in ["`dictGetUInt64`('d', 'a', 1)", "dictHas('d', 1)", "dictIsIn('d', 1, 2)", "joinGet('t', 'c', 1)"] {
        assert!(matches!(refused(&format!("SELECT {f}")), Rejection::Function(_)), "{f}");
    }
}

#[test]
fn a_function_named_as_a_higher_order_argument_is_a_call() {
    // 26.x calls `file(x)` for each element here: the name is checked as a call.
    for sql in [
        "SELECT arrayMap(file, ['x'])",
        "SELECT arrayMap(`file`, ['x'])",
        "SELECT arrayMap((\"file\"), ['x'])",
        "SELECT ARRAYSORT(file AS f, ['x'])",
        "SELECT arrayFold(file, ['x'], '')",
        "SELECT mapApply(getSetting, map('a', 'b'))",
        "SELECT arrayFirst(dictGetString, ['d'], ['a'], [1])",
        "SELECT arrayMap(my_udf, [1])",
        "INSERT INTO t VALUES (arrayMap(file, ['x'])[1])",
    ] {
        assert!(matches!(refused(sql), Rejection::Function(_)), "{sql}");
    }
    // Allowed functions, lambdas, single arrays, limits and qualified columns are fine, and
    // other functions take columns first.
    for sql in [
        "SELECT arrayMap(upper, ['a'])",
        "SELECT arrayMap(x -> upper(x), tags), arraySort(tags), arrayPartialSort(2, tags) FROM events",
        "SELECT arrayMap(e.f, tags), concat(file, 'x'), has(file, 1) FROM events AS e",
    ] {
        assert!(analyze(sql, "analytics").is_ok(), "{sql}: {:?}", analyze(sql, "analytics"));
    }
}

#[test]
fn forwards_what_it_checked() {
    let a = analyze("select /* hi */ a,\"b\" -- c\nfrom `t`;", "d").unwrap();
    assert_eq!(a.sql, "select a, `b` from `t`");
    let a = analyze("INSERT INTO t FORMAT TSV\n1\t'x\n2\t\\N\n", "d").unwrap();
    assert_eq!(a.sql, "INSERT INTO t FORMAT TSV\n1\t'x\n2\t\\N\n");
    let a = analyze("INSERT INTO t FORMAT CSV  \r\n1,\"a\"\"b\"", "d").unwrap();
    assert_eq!(a.sql, "INSERT INTO t FORMAT CSV\n1,\"a\"\"b\"");
    let a = analyze("INSERT INTO t VALUES (1, 'a') , (-2, now()) ;", "d").unwrap();
    assert_eq!(a.sql, "INSERT INTO t VALUES (1, 'a'), (-2, now())");
}

#[test]
fn insert_data_cannot_hide_statement_parts() {
    assert_eq!(refused("INSERT INTO t FORMAT TSV SETTINGS max_threads = 1\n1"), Rejection::Settings);
    assert_eq!(refused("INSERT INTO t FORMAT TSV\nsettings x=1"), Rejection::Settings);
    assert!(matches!(refused("INSERT INTO t FORMAT TSV /* c */ SETTINGS x = 1\n1"), Rejection::Ambiguous(_)));
    assert!(matches!(refused("INSERT INTO t FORMAT TSV;1"), Rejection::Ambiguous(_)));
    assert_eq!(
        tables("INSERT INTO t VALUES ((SELECT max(amount) FROM salaries))"),
        ["analytics.t", "analytics.salaries"]
    );
    assert!(matches!(refused("INSERT INTO t FORMAT Values (dictGet('d', 'a', 1))"), Rejection::Function(_)));
    assert!(matches!(refused("INSERT INTO t VALUES (file('/etc/passwd'))"), Rejection::Function(_)));
}

#[test]
fn clause_words_are_not_columns() {
    // 18.16 reads `div` as an alias here and then FROM salaries; the guard must not read
    // `div FROM` as an operator and an operand.
    assert!(matches!(refused("SELECT x div FROM salaries"), Rejection::Unparseable(_)));
    // 26.x reads this as the column ANY with the alias salaries, as the guard does.
    assert!(tables("SELECT 1 = ANY salaries").is_empty());
    // A keyword is a column when quoted, and a call when followed by `(`.
    assert_eq!(tables("SELECT `format`, left(s, 1), any(x) FROM events"), ["analytics.events"]);
    assert_eq!(tables("SELECT format, end, offset, window, sample, final, cluster FROM events"), ["analytics.events"]);
    assert!(matches!(refused("SELECT from, select FROM events"), Rejection::Unparseable(_)));
    assert_eq!(tables("SELECT 1 AS settings FROM events"), ["analytics.events"]);
}

#[test]
fn backtracking_stays_bounded() {
    // Each of these would take 2^n steps if a failed attempt were retried at every level.
    let n = 45;
    let nested = format!("SELECT {}(SELECT 1){}", "(".repeat(n), " + 1)".repeat(n));
    assert!(analyze(&nested, "d").is_ok());
    let substrings = format!("SELECT {}'abc'{}", "substring(".repeat(n), ", 1)".repeat(n));
    assert!(analyze(&substrings, "d").is_ok());
    let lambdas = format!("SELECT {}1{}", "arrayMap((x, y) -> ".repeat(n), ", [1], [2])".repeat(n));
    assert!(analyze(&lambdas, "d").is_ok());
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(matches!(refused(&deep), Rejection::Unparseable(_)));
    let deep = format!("SELECT {}", "-".repeat(5000) + "1");
    assert!(analyze(&deep, "d").is_ok() || matches!(refused(&deep), Rejection::Unparseable(_)));
}
