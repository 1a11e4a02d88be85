//! The SQL guard: reads a client's SQL as ClickHouse reads it, says what the statement is
//! (its kind) and what it touches (tables, table functions, its format), refuses what it
//! cannot be sure of, and renders the SQL that is forwarded from exactly what it checked.
//!
//! The design rule: what is checked is what runs.
//! - [`lexer`] tokenises as ClickHouse's lexer does, and refuses text that ClickHouse 18.16
//!   and 26.x tokenise differently or that ClickHouse would decode (escapes in quoted
//!   identifiers, nested comments, heredocs, parameters, numbers glued to names, …).
//! - The parser ([`parser`], with the grammar in [`expr`], [`query`], [`statement`] and
//!   [`ddl`]) is a strict subset of ClickHouse's grammar. Names resolve as ClickHouse resolves
//!   them: a name after `FROM`/`JOIN`, after `IN` (`x IN t`, `in(x, t)`, `globalNotIn(x, t)`,
//!   …), in `DESCRIBE`, `SHOW CREATE`, `EXISTS`, `INSERT INTO` and schema changes is a table
//!   (`[db.]t`, unqualified names in the request's database); CTE names are scoped as
//!   narrowly as ClickHouse scopes them. Functions are checked by their resolved name
//!   against an allow-list ([`names`]); table functions, engines and formats likewise.
//! - [`cursor`] renders the forwarded SQL from the checked tokens: comments and layout
//!   dropped, quoted identifiers re-quoted; INSERT data after `FORMAT x` follows verbatim,
//!   from where ClickHouse starts reading it.
//!
//! Policy (which tables a role may read) is [`crate::policy`]'s job; the guard only reports.

pub mod cursor;
pub mod ddl;
pub mod expr;
mod forms;
pub mod lexer;
pub mod names;
pub mod parser;
pub mod query;
pub mod statement;

pub use names::{SAFE_TABLE_FUNCTIONS, format_allowed, function_allowed, table_function_safe};

use lexer::Kind;
use parser::Parser;
use serde::Serialize;

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
    /// The SQL to forward, rendered from the checked tokens (and INSERT data verbatim).
    pub sql: String,
}

/// Why the guard refused a statement. `rule()` names the check, `reason()` explains.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("empty query")]
    Empty,
    #[error("cannot parse the query: {0}")]
    Unparseable(String),
    #[error("only one statement per request is allowed")]
    MultipleStatements,
    #[error("INTO OUTFILE is not allowed")]
    IntoOutfile,
    #[error("SETTINGS from the client are not allowed; limits are set by the proxy")]
    Settings,
    #[error("FORMAT {0} is not allowed")]
    Format(String),
    #[error("ambiguous syntax is not allowed: {0}")]
    Ambiguous(&'static str),
    #[error("function {0}() is not allowed: it reads outside the policy, or the guard does not know it")]
    Function(String),
    #[error("table function {0}() can read outside the policy and is never allowed")]
    DangerousTableFunction(String),
    #[error("table engine {0} can read outside the policy and is not allowed")]
    Engine(String),
    #[error("table setting {0} is not allowed")]
    TableSetting(String),
    #[error("unsupported table expression: {0}")]
    UnsupportedTable(String),
    #[error("{0} statements are never forwarded")]
    Statement(&'static str),
}

impl Rejection {
    /// The rule that decided, as reported to the client and in the decision.
    pub fn rule(&self) -> &'static str {
        match self {
            Rejection::Empty | Rejection::Unparseable(_) | Rejection::Ambiguous(_) => "guard.parse",
            Rejection::MultipleStatements => "guard.single_statement",
            Rejection::IntoOutfile => "guard.into_outfile",
            Rejection::Settings | Rejection::TableSetting(_) => "guard.settings",
            Rejection::Format(_) => "guard.format",
            Rejection::Function(_) => "guard.functions",
            Rejection::DangerousTableFunction(_) => "guard.table_functions",
            Rejection::Engine(_) => "guard.engines",
            Rejection::UnsupportedTable(_) => "guard.tables",
            Rejection::Statement(_) => "guard.statements",
        }
    }
}

/// Analyses one client statement; unqualified tables resolve against `default_database`.
pub fn analyze(sql: &str, default_database: &str) -> Result<Analysis, Rejection> {
    let mut p = Parser::new(sql, default_database);
    match (p.c.kind(), p.c.kind_at(1)) {
        (Kind::End, _) | (Kind::Semicolon, Kind::End) => return Err(Rejection::Empty),
        (Kind::Semicolon, _) => return Err(p.c.error("a statement")),
        _ => {}
    }
    let (kind, data) = p.statement()?;
    let end = p.c.pos;
    if data.is_none() {
        let semicolon = p.c.eat(Kind::Semicolon);
        match p.c.kind() {
            Kind::End => {}
            Kind::Bad(reason) => return Err(Rejection::Ambiguous(reason)),
            _ if semicolon => return Err(Rejection::MultipleStatements),
            _ => return Err(p.c.error("the end of the statement")),
        }
    }
    if !kind.is_read_only() && p.tables.is_empty() {
        return Err(Rejection::UnsupportedTable("cannot tell which table the statement changes".into()));
    }
    let mut rendered = String::with_capacity(sql.len());
    p.c.render(0, end, &mut rendered);
    if let Some(d) = data {
        rendered.push('\n');
        rendered.push_str(&sql[d.offset..]);
    }
    Ok(Analysis { kind, tables: p.tables, table_functions: p.table_functions, format: p.format, sql: rendered })
}

#[cfg(test)]
mod tests;
