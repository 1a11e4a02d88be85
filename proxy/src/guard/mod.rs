//! The SQL guard: parses a client's SQL with `sqlparser` (ClickHouse dialect) and says what
//! it is (statement kind), what it touches (tables, table functions) and whether it uses
//! anything that is never allowed from a client.
//!
//! Two passes:
//! 1. A small lexer ([`lexer`], [`lexical_check`]) rejects constructs where this parser and ClickHouse
//!    could read the text differently (nested or unterminated comments, `#` comments,
//!    `$` heredocs) and, with precise reasons, `INTO OUTFILE` and `SETTINGS`.
//! 2. The parser: exactly one statement; a visitor ([`extract`]) collects every relation (including in
//!    subqueries, joins, CTEs and `UNION`s), table functions and scalar functions that read
//!    other tables or reach outside. CTE names are scoped to the query that defines them.
//!
//! Whatever the parser cannot parse is rejected. Policy (which tables a role may read) is
//! [`crate::policy`]'s job; the guard only reports.

//!
//! - [`lexer`]: the lexical pre-check and the trailing `FORMAT` split.
//! - [`extract`]: table, table function and function extraction from the parsed statement.

pub mod extract;
pub mod lexer;

pub use lexer::lexical_check;

use extract::{Collector, explicit_targets, show_targets};
use lexer::split_trailing_format;
use serde::Serialize;
use sqlparser::ast::{Statement, Visit, Visitor};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// Table functions that read files, other servers or run programs: never allowed.
pub const DANGEROUS_TABLE_FUNCTIONS: &[&str] = &[
    "url",
    "urlcluster",
    "file",
    "filecluster",
    "remote",
    "remotesecure",
    "cluster",
    "clusterallreplicas",
    "s3",
    "s3cluster",
    "gcs",
    "oss",
    "cosn",
    "azureblobstorage",
    "azureblobstoragecluster",
    "hdfs",
    "hdfscluster",
    "mysql",
    "postgresql",
    "jdbc",
    "odbc",
    "executable",
    "executablepool",
    "input",
    "mongodb",
    "redis",
    "sqlite",
    "hive",
    "iceberg",
    "icebergs3",
    "deltalake",
    "hudi",
    "dictionary",
    "merge",
    "view",
    "viewifpermitted",
    "loop",
    "fuzzjson",
    "format",
    "mergetreeindex",
];

/// Scalar functions that read other tables or settings behind the policy's back.
pub(crate) const DENIED_FUNCTIONS: &[&str] =
    &["joinget", "joingetornull", "hascolumnintable", "getsetting", "file", "url"];

/// Output formats a client may ask for (`FORMAT x` or `default_format=x`). Formats that
/// need server-side schema or template files are left out.
const ALLOWED_FORMAT_PREFIXES: &[&str] = &[
    "tabseparated",
    "tsv",
    "csv",
    "json",
    "pretty",
    "values",
    "vertical",
    "native",
    "rowbinary",
    "null",
    "xml",
    "markdown",
    "parquet",
    "arrow",
    "orc",
    "avro",
    "tskv",
    "lineasstring",
    "rawblob",
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
            StatementKind::Select,
            StatementKind::Show,
            StatementKind::Describe,
            StatementKind::Explain,
            StatementKind::Insert,
            StatementKind::Update,
            StatementKind::Delete,
            StatementKind::Create,
            StatementKind::Alter,
            StatementKind::Drop,
            StatementKind::Truncate,
            StatementKind::Rename,
            StatementKind::Optimize,
            StatementKind::Set,
            StatementKind::Use,
            StatementKind::Other,
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
        && !format_allowed(f)
    {
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
        return Ok(Analysis {
            kind,
            tables,
            table_functions: Vec::new(),
            format: trailing_format,
            sql: trimmed.to_owned(),
        });
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

pub(crate) fn truncate(text: &str) -> String {
    let mut out: String = text.chars().take(200).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
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
        assert_eq!(tables("SELECT * FROM (WITH s AS (SELECT 1) SELECT * FROM s) AS q, s"), ["analytics.s"]);
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
        assert!(matches!(
            analyze("SELECT * FROM url('http://x', CSV, 'a String')", "d"),
            Err(Rejection::DangerousTableFunction(_))
        ));
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
