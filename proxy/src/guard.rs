//! The SQL guard: parses a client's SQL with `sqlparser` (ClickHouse dialect) and says what
//! it is (statement kind), what it touches (tables, table functions) and whether it uses
//! anything that is never allowed from a client.
//!
//! Two passes:
//! 1. A small lexer ([`lexical_check`]) rejects constructs where this parser and ClickHouse
//!    could read the text differently (nested or unterminated comments, `#` comments,
//!    `$` heredocs) and, with precise reasons, `INTO OUTFILE` and `SETTINGS`.
//! 2. The parser: exactly one statement; a visitor collects every relation (including in
//!    subqueries, joins, CTEs and `UNION`s), table functions and scalar functions that read
//!    other tables or reach outside. CTE names are scoped to the query that defines them.
//!
//! Whatever the parser cannot parse is rejected. Policy (which tables a role may read) is
//! [`crate::policy`]'s job; the guard only reports.

use serde::Serialize;
use sqlparser::ast::{Expr, ObjectName, ObjectNamePart, Query, Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// Table functions that read files, other servers or run programs: never allowed.
pub const DANGEROUS_TABLE_FUNCTIONS: &[&str] = &[
    "url", "urlcluster", "file", "filecluster", "remote", "remotesecure", "cluster", "clusterallreplicas",
    "s3", "s3cluster", "gcs", "oss", "cosn", "azureblobstorage", "azureblobstoragecluster", "hdfs",
    "hdfscluster", "mysql", "postgresql", "jdbc", "odbc", "executable", "executablepool", "input",
    "mongodb", "redis", "sqlite", "hive", "iceberg", "icebergs3", "deltalake", "hudi", "dictionary",
    "merge", "view", "viewifpermitted", "loop", "fuzzjson", "format", "mergetreeindex",
];

/// Scalar functions that read other tables or settings behind the policy's back.
const DENIED_FUNCTIONS: &[&str] = &["joinget", "joingetornull", "hascolumnintable", "getsetting", "file", "url"];

/// Output formats a client may ask for (`FORMAT x` or `default_format=x`). Formats that
/// need server-side schema or template files are left out.
const ALLOWED_FORMAT_PREFIXES: &[&str] = &[
    "tabseparated", "tsv", "csv", "json", "pretty", "values", "vertical", "native", "rowbinary", "null",
    "xml", "markdown", "parquet", "arrow", "orc", "avro", "tskv", "lineasstring", "rawblob",
];

/// What kind of statement a query is (the decision's `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatementKind {
    Select,
    Show,
    Describe,
    Explain,
    Insert,
    Update,
    Delete,
    Create,
    Alter,
    Drop,
    Truncate,
    Rename,
    Optimize,
    Set,
    Use,
    Other,
}

impl StatementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StatementKind::Select => "select",
            StatementKind::Show => "show",
            StatementKind::Describe => "describe",
            StatementKind::Explain => "explain",
            StatementKind::Insert => "insert",
            StatementKind::Update => "update",
            StatementKind::Delete => "delete",
            StatementKind::Create => "create",
            StatementKind::Alter => "alter",
            StatementKind::Drop => "drop",
            StatementKind::Truncate => "truncate",
            StatementKind::Rename => "rename",
            StatementKind::Optimize => "optimize",
            StatementKind::Set => "set",
            StatementKind::Use => "use",
            StatementKind::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        const ALL: &[StatementKind] = &[
            StatementKind::Select, StatementKind::Show, StatementKind::Describe, StatementKind::Explain,
            StatementKind::Insert, StatementKind::Update, StatementKind::Delete, StatementKind::Create,
            StatementKind::Alter, StatementKind::Drop, StatementKind::Truncate, StatementKind::Rename,
            StatementKind::Optimize, StatementKind::Set, StatementKind::Use, StatementKind::Other,
        ];
        ALL.iter().copied().find(|k| k.as_str().eq_ignore_ascii_case(text))
    }

    /// Kinds that only read.
    pub fn is_read_only(self) -> bool {
        matches!(self, StatementKind::Select | StatementKind::Show | StatementKind::Describe | StatementKind::Explain)
    }

    /// Whether a role may list this kind. Session changes (`SET`, `USE`) and unknown
    /// statements are never forwarded.
    pub fn configurable(self) -> bool {
        !matches!(self, StatementKind::Set | StatementKind::Use | StatementKind::Other)
    }
}

/// A fully qualified table name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct TableName {
    pub database: String,
    pub table: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// What the guard saw in an acceptable statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Analysis {
    pub kind: StatementKind,
    /// Tables in order of first appearance, without duplicates.
    pub tables: Vec<TableName>,
    /// Table functions used (lower case), e.g. `numbers`.
    pub table_functions: Vec<String>,
    /// `FORMAT` clause, if any.
    pub format: Option<String>,
    /// The SQL to forward: the client's text without trailing `;` and whitespace.
    pub sql: String,
}

/// Why the guard refused a statement. `rule()` names the check, `reason()` explains.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("empty query")]
    Empty,
    #[error("cannot parse the query: {0}")]
    Unparseable(String),
    #[error("only one statement per request is allowed (found {0})")]
    MultipleStatements(usize),
    #[error("INTO OUTFILE is not allowed")]
    IntoOutfile,
    #[error("SETTINGS from the client are not allowed; limits are set by the proxy")]
    Settings,
    #[error("FORMAT {0} is not allowed")]
    Format(String),
    #[error("ambiguous syntax is not allowed: {0}")]
    Ambiguous(&'static str),
    #[error("function {0}() is not allowed")]
    Function(String),
    #[error("table function {0}() reaches outside ClickHouse and is never allowed")]
    DangerousTableFunction(String),
    #[error("unsupported table expression: {0}")]
    UnsupportedTable(String),
    #[error("CTE `{0}` refers to a table of the same name inside its own definition")]
    AmbiguousCte(String),
    #[error("{0} statements are never forwarded")]
    Statement(&'static str),
}

impl Rejection {
    /// The rule that decided, as reported to the client and in the decision.
    pub fn rule(&self) -> &'static str {
        match self {
            Rejection::Empty | Rejection::Unparseable(_) | Rejection::Ambiguous(_) | Rejection::AmbiguousCte(_) => {
                "guard.parse"
            }
            Rejection::MultipleStatements(_) => "guard.single_statement",
            Rejection::IntoOutfile => "guard.into_outfile",
            Rejection::Settings => "guard.settings",
            Rejection::Format(_) => "guard.format",
            Rejection::Function(_) => "guard.functions",
            Rejection::DangerousTableFunction(_) => "guard.table_functions",
            Rejection::UnsupportedTable(_) => "guard.tables",
            Rejection::Statement(_) => "guard.statements",
        }
    }
}

/// Whether a format name is one clients may ask for.
pub fn format_allowed(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ALLOWED_FORMAT_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// Analyses one client statement; unqualified tables resolve against `default_database`.
pub fn analyze(sql: &str, default_database: &str) -> Result<Analysis, Rejection> {
    let trimmed = sql.trim().trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    if trimmed.is_empty() {
        return Err(Rejection::Empty);
    }
    let words = lexical_check(trimmed)?;
    let (to_parse, trailing_format) = split_trailing_format(trimmed, &words);
    if let Some(f) = &trailing_format
        && !format_allowed(f) {
            return Err(Rejection::Format(f.clone()));
        }
    let statements = Parser::parse_sql(&ClickHouseDialect {}, to_parse)
        .map_err(|e| Rejection::Unparseable(truncate(&e.to_string())))?;
    let statement = match statements.as_slice() {
        [one] => one,
        [] => return Err(Rejection::Empty),
        many => return Err(Rejection::MultipleStatements(many.len())),
    };
    let kind = statement_kind(statement);
    match kind {
        StatementKind::Set => return Err(Rejection::Statement("SET")),
        StatementKind::Use => return Err(Rejection::Statement("USE")),
        StatementKind::Other => return Err(Rejection::Statement("this kind of")),
        _ => {}
    }
    let mut collector = Collector::new(default_database);
    if let Some(tables) = show_targets(statement, default_database) {
        return Ok(Analysis { kind, tables, table_functions: Vec::new(), format: trailing_format, sql: trimmed.to_owned() });
    }
    for name in explicit_targets(statement)? {
        if let ControlFlow::Break(rejection) = collector.pre_visit_relation(&name) {
            return Err(rejection);
        }
    }
    if let ControlFlow::Break(rejection) = statement.visit(&mut collector) {
        return Err(rejection);
    }
    if !kind.is_read_only() && kind != StatementKind::Create && collector.tables.is_empty() {
        return Err(Rejection::UnsupportedTable("cannot tell which table the statement changes".into()));
    }
    Ok(Analysis {
        kind,
        tables: collector.tables,
        table_functions: collector.table_functions,
        format: trailing_format.or(collector.format),
        sql: trimmed.to_owned(),
    })
}

fn truncate(text: &str) -> String {
    let mut out: String = text.chars().take(200).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// What `SHOW TABLES`/`SHOW DATABASES` list, as pseudo tables (`db.*`, `system.databases`),
/// so that policy can decide them. `None` for other statements.
fn show_targets(statement: &Statement, default_database: &str) -> Option<Vec<TableName>> {
    match statement {
        Statement::ShowTables { show_options, .. } => {
            let database = show_options
                .show_in
                .as_ref()
                .and_then(|i| i.parent_name.as_ref())
                .map(|n| n.to_string().trim_matches(['`', '"']).to_owned())
                .unwrap_or_else(|| default_database.to_owned());
            Some(vec![TableName { database, table: "*".into() }])
        }
        Statement::ShowDatabases { .. } => Some(vec![TableName { database: "system".into(), table: "databases".into() }]),
        _ => None,
    }
}

/// Target tables the visitor does not report as relations.
fn explicit_targets(statement: &Statement) -> Result<Vec<ObjectName>, Rejection> {
    Ok(match statement {
        Statement::Drop { names, .. } => names.clone(),
        Statement::RenameTable(renames) => renames.iter().flat_map(|r| [r.old_name.clone(), r.new_name.clone()]).collect(),
        Statement::CreateTable(c) => vec![c.name.clone()],
        Statement::CreateView(c) => vec![c.name.clone()],
        Statement::ShowCreate { obj_name, .. } => vec![obj_name.clone()],
        Statement::Insert(insert) => match &insert.table {
            sqlparser::ast::TableObject::TableName(_) => Vec::new(),
            sqlparser::ast::TableObject::TableFunction(f) => {
                let name = f.name.to_string().to_ascii_lowercase();
                return Err(if DANGEROUS_TABLE_FUNCTIONS.contains(&name.as_str()) {
                    Rejection::DangerousTableFunction(name)
                } else {
                    Rejection::UnsupportedTable(format!("INSERT INTO FUNCTION {name}"))
                });
            }
            other => return Err(Rejection::UnsupportedTable(truncate(&other.to_string()))),
        },
        _ => Vec::new(),
    })
}

fn statement_kind(statement: &Statement) -> StatementKind {
    match statement {
        Statement::Query(_) => StatementKind::Select,
        Statement::Insert(_) => StatementKind::Insert,
        Statement::Update(_) => StatementKind::Update,
        Statement::Delete(_) => StatementKind::Delete,
        Statement::CreateTable(_) | Statement::CreateView(_) | Statement::CreateDatabase { .. } => {
            StatementKind::Create
        }
        Statement::AlterTable(_) => StatementKind::Alter,
        Statement::Drop { .. } => StatementKind::Drop,
        Statement::Truncate(_) => StatementKind::Truncate,
        Statement::RenameTable(_) => StatementKind::Rename,
        Statement::OptimizeTable { .. } => StatementKind::Optimize,
        Statement::ShowTables { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCreate { .. } => StatementKind::Show,
        Statement::ExplainTable { .. } => StatementKind::Describe,
        Statement::Explain { .. } => StatementKind::Explain,
        Statement::Set(_) => StatementKind::Set,
        Statement::Use(_) => StatementKind::Use,
        _ => StatementKind::Other,
    }
}

/// Rejects text that this parser and ClickHouse might read differently, and gives precise
/// reasons for `INTO OUTFILE` and `SETTINGS` (which may not even parse here).
pub fn lexical_check(sql: &str) -> Result<Vec<(usize, usize)>, Rejection> {
    let bytes = sql.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    let mut prev_word = String::new();
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' | b'"' | b'`' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(Rejection::Ambiguous("unterminated quote")),
                        Some(b'\\') => i += 2,
                        Some(&c) if c == b && bytes.get(i + 1) == Some(&b) => i += 2,
                        Some(&c) if c == b => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                loop {
                    match (bytes.get(i), bytes.get(i + 1)) {
                        (None, _) => return Err(Rejection::Ambiguous("unterminated comment")),
                        (Some(b'*'), Some(b'/')) => {
                            i += 2;
                            break;
                        }
                        (Some(b'/'), Some(b'*')) => return Err(Rejection::Ambiguous("nested comment")),
                        _ => i += 1,
                    }
                }
            }
            b'#' => return Err(Rejection::Ambiguous("# comment")),
            b'$' => return Err(Rejection::Ambiguous("$ quoting")),
            _ if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = sql[start..i].to_ascii_uppercase();
                if word == "OUTFILE" && prev_word == "INTO" {
                    return Err(Rejection::IntoOutfile);
                }
                if word == "SETTINGS" {
                    return Err(Rejection::Settings);
                }
                words.push((start, i));
                prev_word = word;
            }
            _ => i += 1,
        }
    }
    Ok(words)
}

/// Splits a trailing `FORMAT name` off (the parser accepts it only in some positions).
/// `words` are the word spans from [`lexical_check`].
fn split_trailing_format<'s>(sql: &'s str, words: &[(usize, usize)]) -> (&'s str, Option<String>) {
    if let [.., (fs, fe), (ns, ne)] = words {
        let between = &sql[*fe..*ns];
        let after = &sql[*ne..];
        if sql[*fs..*fe].eq_ignore_ascii_case("FORMAT") && between.trim().is_empty() && after.trim().is_empty() {
            return (&sql[..*fs], Some(sql[*ns..*ne].to_owned()));
        }
    }
    (sql, None)
}

/// Walks a statement, collecting what it touches.
struct Collector<'a> {
    default_database: &'a str,
    tables: Vec<TableName>,
    table_functions: Vec<String>,
    format: Option<String>,
    /// CTE names visible in each enclosing query.
    cte_scopes: Vec<BTreeSet<String>>,
    /// The next relation is a table function's name, not a table.
    skip_relation: bool,
}

impl<'a> Collector<'a> {
    fn new(default_database: &'a str) -> Self {
        Collector {
            default_database,
            tables: Vec::new(),
            table_functions: Vec::new(),
            format: None,
            cte_scopes: Vec::new(),
            skip_relation: false,
        }
    }

    fn is_cte(&self, name: &str) -> bool {
        self.cte_scopes.iter().any(|s| s.contains(name))
    }
}

fn name_parts(name: &ObjectName) -> Result<Vec<String>, Rejection> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(id) => Ok(id.value.clone()),
            ObjectNamePart::Function(_) => Err(Rejection::UnsupportedTable(name.to_string())),
        })
        .collect()
}

/// Unqualified relation names anywhere inside a query (for the self-referencing CTE check).
fn unqualified_relations(query: &Query) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let _ = sqlparser::ast::visit_relations(query, |name| {
        if let [ObjectNamePart::Identifier(id)] = name.0.as_slice() {
            out.insert(id.value.clone());
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

impl Visitor for Collector<'_> {
    type Break = Rejection;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Rejection> {
        if query.settings.is_some() {
            return ControlFlow::Break(Rejection::Settings);
        }
        if let Some(format) = &query.format_clause {
            let name = match format {
                sqlparser::ast::FormatClause::Identifier(id) => id.value.clone(),
                sqlparser::ast::FormatClause::Null => "Null".to_owned(),
            };
            if !format_allowed(&name) {
                return ControlFlow::Break(Rejection::Format(name));
            }
            self.format = Some(name);
        }
        let mut scope = BTreeSet::new();
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                let name = cte.alias.name.value.clone();
                if unqualified_relations(&cte.query).contains(&name) {
                    return ControlFlow::Break(Rejection::AmbiguousCte(name));
                }
                scope.insert(name);
            }
        }
        self.cte_scopes.push(scope);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<Rejection> {
        self.cte_scopes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Rejection> {
        match factor {
            TableFactor::Table { name, args: Some(_), .. } => {
                let fname = name.to_string().to_ascii_lowercase();
                if DANGEROUS_TABLE_FUNCTIONS.contains(&fname.as_str()) {
                    return ControlFlow::Break(Rejection::DangerousTableFunction(fname));
                }
                if !self.table_functions.contains(&fname) {
                    self.table_functions.push(fname);
                }
                self.skip_relation = true;
            }
            TableFactor::Table { .. } | TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => {}
            TableFactor::TableFunction { expr, .. } => {
                return ControlFlow::Break(Rejection::UnsupportedTable(truncate(&expr.to_string())));
            }
            TableFactor::Function { name, .. } => {
                let fname = name.to_string().to_ascii_lowercase();
                if DANGEROUS_TABLE_FUNCTIONS.contains(&fname.as_str()) {
                    return ControlFlow::Break(Rejection::DangerousTableFunction(fname));
                }
                return ControlFlow::Break(Rejection::UnsupportedTable(fname));
            }
            other => return ControlFlow::Break(Rejection::UnsupportedTable(truncate(&other.to_string()))),
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Rejection> {
        if std::mem::take(&mut self.skip_relation) {
            return ControlFlow::Continue(());
        }
        let parts = match name_parts(relation) {
            Ok(p) => p,
            Err(e) => return ControlFlow::Break(e),
        };
        let table = match parts.as_slice() {
            [t] if self.is_cte(t) => return ControlFlow::Continue(()),
            [t] => TableName { database: self.default_database.to_owned(), table: t.clone() },
            [d, t] => TableName { database: d.clone(), table: t.clone() },
            _ => return ControlFlow::Break(Rejection::UnsupportedTable(relation.to_string())),
        };
        if !self.tables.contains(&table) {
            self.tables.push(table);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Rejection> {
        if let Expr::Function(f) = expr {
            let name = f.name.to_string().to_ascii_lowercase();
            let base = name.rsplit('.').next().unwrap_or(&name);
            if DENIED_FUNCTIONS.contains(&base) || base.starts_with("dictget") || DANGEROUS_TABLE_FUNCTIONS.contains(&base) {
                return ControlFlow::Break(Rejection::Function(name));
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(sql: &str) -> Vec<String> {
        analyze(sql, "analytics").unwrap().tables.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn finds_tables_everywhere() {
        assert_eq!(tables("SELECT count() FROM events"), ["analytics.events"]);
        assert_eq!(
            tables("SELECT * FROM a.x JOIN b.y USING (id) WHERE id IN (SELECT id FROM c.z)"),
            ["a.x", "b.y", "c.z"]
        );
        assert_eq!(tables("SELECT 1 FROM a.x UNION ALL SELECT 2 FROM b.y"), ["a.x", "b.y"]);
        assert_eq!(tables("WITH t AS (SELECT * FROM a.x) SELECT * FROM t"), ["a.x"]);
        assert_eq!(tables("SELECT * FROM (SELECT * FROM a.x) AS s"), ["a.x"]);
    }

    #[test]
    fn cte_names_are_scoped() {
        // `s` outside the derived table is a real table, not the inner CTE.
        assert_eq!(
            tables("SELECT * FROM (WITH s AS (SELECT 1) SELECT * FROM s) AS q, s"),
            ["analytics.s"]
        );
        assert!(matches!(analyze("WITH s AS (SELECT * FROM s) SELECT * FROM s", "d"), Err(Rejection::AmbiguousCte(_))));
    }

    #[test]
    fn kinds_and_functions() {
        let a = analyze("SELECT count() FROM numbers(10)", "default").unwrap();
        assert_eq!(a.kind, StatementKind::Select);
        assert!(a.tables.is_empty());
        assert_eq!(a.table_functions, ["numbers"]);
        assert_eq!(analyze("INSERT INTO a.x VALUES (1)", "d").unwrap().kind, StatementKind::Insert);
        assert_eq!(analyze("DROP TABLE a.x", "d").unwrap().kind, StatementKind::Drop);
        assert_eq!(analyze("SELECT 1;", "d").unwrap().sql, "SELECT 1");
        assert!(matches!(analyze("SELECT 1; SELECT 2", "d"), Err(Rejection::MultipleStatements(2))));
        assert!(matches!(analyze("SELECT * FROM url('http://x', CSV, 'a String')", "d"), Err(Rejection::DangerousTableFunction(_))));
        assert!(matches!(analyze("SELECT 1 SETTINGS max_rows_to_read = 0", "d"), Err(Rejection::Settings)));
        assert!(matches!(analyze("SELECT 1 INTO OUTFILE 'x'", "d"), Err(Rejection::IntoOutfile)));
        assert!(analyze("SELECT 'a#b', \"c$\" FROM t FORMAT JSON", "d").is_ok());
        assert!(matches!(analyze("SELECT 1 FORMAT Template", "d"), Err(Rejection::Format(_))));
        let show = analyze("SHOW TABLES FROM system", "d").unwrap();
        assert_eq!((show.kind, show.tables[0].to_string()), (StatementKind::Show, "system.*".to_owned()));
        assert_eq!(analyze("SHOW TABLES", "analytics").unwrap().tables[0].to_string(), "analytics.*");
        assert_eq!(analyze("DESCRIBE TABLE a.x", "d").unwrap().tables[0].to_string(), "a.x");
        assert_eq!(analyze("SELECT 1 FORMAT JSON", "d").unwrap().format.as_deref(), Some("JSON"));
    }
}
