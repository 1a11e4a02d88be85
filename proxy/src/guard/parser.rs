//! The guard's parser state: the cursor, what the statement touches (tables, table functions,
//! the output format), the CTE names in scope, and the nesting bound.
//!
//! The grammar lives in [`super::expr`] (expressions), [`super::query`] (SELECT, UNION, WITH,
//! FROM), [`super::statement`] (statement kinds) and [`super::ddl`] (schema changes). It is a
//! strict subset of what ClickHouse parses, written after ClickHouse's own parsers
//! (`ExpressionElementParsers.cpp`, `ExpressionListParsers.cpp`, `ParserSelectQuery.cpp`,
//! `ParserTablesInSelectQuery.cpp`, `ParserInsertQuery.cpp`); what it does not know, it
//! refuses. Where ClickHouse could read a name as a table, the parser assumes it does.

use super::cursor::Cursor;
use super::lexer::Kind;
use super::{Rejection, TableName};
use std::collections::BTreeSet;

/// Deeper nesting than this is refused (ClickHouse's own `max_parser_depth` is 1000).
pub const MAX_DEPTH: usize = 200;

/// Words that are never an alias without `AS`: ClickHouse's `ParserAlias::restricted_keywords`
/// of 18.16 and 26.x together, and the other words that end an expression in a clause.
pub const RESTRICTED_ALIASES: &[&str] = &[
    "ALL",
    "AND",
    "ANTI",
    "ANY",
    "ARRAY",
    "AS",
    "ASOF",
    "BETWEEN",
    "BUCKETS",
    "BY",
    "CLUSTER",
    "CROSS",
    "DISTINCT",
    "DIV",
    "ELSE",
    "END",
    "EXCEPT",
    "FINAL",
    "FORMAT",
    "FROM",
    "FULL",
    "GLOBAL",
    "GROUP",
    "HAVING",
    "ILIKE",
    "IN",
    "INNER",
    "INTERSECT",
    "INTO",
    "IS",
    "JOIN",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LOCAL",
    "MOD",
    "NOT",
    "OFFSET",
    "ON",
    "ONLY",
    "OR",
    "ORDER",
    "OUTER",
    "PASTE",
    "PREWHERE",
    "QUALIFY",
    "REGEXP",
    "RIGHT",
    "SAMPLE",
    "SELECT",
    "SEMI",
    "SETTINGS",
    "TEALIMIT",
    "THEN",
    "UNION",
    "USING",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
];

/// Words that are never a column unless quoted (they may still name a call: `left(s, 1)`):
/// those that start a SELECT, its clauses or a set operation, and the operator words. Read
/// as a column, `FROM` would hide the table after it: 18.16 reads `SELECT x div FROM t` as
/// `x AS div FROM t`, and 26.x reads `x DIV FROM` only if FROM can be an operand.
pub const NON_OPERANDS: &[&str] = &[
    "AND",
    "AS",
    "BETWEEN",
    "BY",
    "DISTINCT",
    "DIV",
    "ELSE",
    "EXCEPT",
    "FROM",
    "GLOBAL",
    "GROUP",
    "HAVING",
    "ILIKE",
    "IN",
    "INTERSECT",
    "INTO",
    "IS",
    "JOIN",
    "LIKE",
    "MOD",
    "NOT",
    "ON",
    "OR",
    "ORDER",
    "PREWHERE",
    "QUALIFY",
    "REGEXP",
    "SELECT",
    "SETTINGS",
    "THEN",
    "UNION",
    "USING",
    "WHEN",
    "WHERE",
    "WITH",
];

/// What an expression is, as far as the guard cares: a bare (possibly qualified) name, which
/// ClickHouse may read as a table after IN, or anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A name of `parts` identifiers, the first at token index `first` (then every second).
    Ident {
        first: usize,
        parts: usize,
    },
    Other,
}

/// The parser of one statement.
#[derive(Debug)]
pub struct Parser<'s> {
    pub c: Cursor<'s>,
    default_database: &'s str,
    pub tables: Vec<TableName>,
    pub table_functions: Vec<String>,
    pub format: Option<String>,
    /// CTE names visible at this point, innermost scope last.
    scopes: Vec<Vec<&'s str>>,
    depth: usize,
    /// Token positions where a `(` turned out not to start a subquery.
    pub not_subquery: BTreeSet<usize>,
}

impl<'s> Parser<'s> {
    pub fn new(src: &'s str, default_database: &'s str) -> Self {
        Parser {
            c: Cursor::new(src),
            default_database,
            tables: Vec::new(),
            table_functions: Vec::new(),
            format: None,
            scopes: Vec::new(),
            depth: 0,
            not_subquery: BTreeSet::new(),
        }
    }

    /// Runs `f` one nesting level deeper, refusing beyond [`MAX_DEPTH`].
    pub fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Rejection>) -> Result<T, Rejection> {
        if self.depth >= MAX_DEPTH {
            return Err(Rejection::Unparseable(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    /// Runs `f` with CTE names taken out of scope (inside table function arguments, where
    /// ClickHouse does not resolve them: `view(SELECT * FROM cte)` reads the table `cte`).
    pub fn without_ctes<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Rejection>) -> Result<T, Rejection> {
        let saved = std::mem::take(&mut self.scopes);
        let r = f(self);
        self.scopes = saved;
        r
    }

    pub fn push_scope(&mut self) {
        self.scopes.push(Vec::new());
    }

    pub fn pop_scope(&mut self) {
        self.scopes.pop();
    }

    /// Makes a CTE name visible in the innermost scope.
    pub fn define_cte(&mut self, name: &'s str) {
        if let Some(s) = self.scopes.last_mut() {
            s.push(name);
        }
    }

    fn is_cte(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| s.contains(&name))
    }

    /// Records a table reference (`[db.]table`); an unqualified name in a CTE's scope is the CTE.
    pub fn table_ref(&mut self, parts: &[&str]) -> Result<(), Rejection> {
        self.table_ref_in(parts, true)
    }

    /// Records a table reference; with `ctes` false, a name is a table even where a CTE of
    /// that name is in scope.
    pub fn table_ref_in(&mut self, parts: &[&str], ctes: bool) -> Result<(), Rejection> {
        if parts.iter().any(|p| p.contains('.')) {
            // ClickHouse reads `a.b` in quotes as one name; the guard will not guess.
            return Err(Rejection::UnsupportedTable(format!("a quoted table name with a dot: {}", parts.join("."))));
        }
        let table = match parts {
            [t] if ctes && self.is_cte(t) => return Ok(()),
            [t] => TableName { database: self.default_database.to_owned(), table: (*t).to_owned() },
            [d, t] => TableName { database: (*d).to_owned(), table: (*t).to_owned() },
            _ => return Err(Rejection::UnsupportedTable(parts.join("."))),
        };
        if !self.tables.contains(&table) {
            self.tables.push(table);
        }
        Ok(())
    }

    /// Records the name an expression of [`Shape::Ident`] spells as a table (`ctes`: as for
    /// [`Parser::table_ref_in`]).
    pub fn table_ref_shape(&mut self, shape: Shape, ctes: bool) -> Result<(), Rejection> {
        if let Shape::Ident { first, parts } = shape {
            let names: Vec<&'s str> = (0..parts).map(|i| self.c.name_of(&self.c.token(first + 2 * i))).collect();
            self.table_ref_in(&names, ctes)?;
        }
        Ok(())
    }

    /// A whole-database target (`DROP DATABASE db`, `SHOW TABLES FROM db`) as `db.*`.
    pub fn database_ref(&mut self, database: &str) {
        let table = TableName { database: database.to_owned(), table: "*".to_owned() };
        if !self.tables.contains(&table) {
            self.tables.push(table);
        }
    }

    pub fn default_database(&self) -> &'s str {
        self.default_database
    }

    /// A `[db.]name` made of identifiers, as ClickHouse's `ParserCompoundIdentifier` reads a
    /// table: at most two parts.
    pub fn table_name(&mut self, what: &str) -> Result<Vec<&'s str>, Rejection> {
        let mut parts = vec![self.c.ident(what)?];
        while self.c.kind() == Kind::Dot && matches!(self.c.kind_at(1), Kind::Word | Kind::Quoted) {
            self.c.advance();
            parts.push(self.c.ident(what)?);
        }
        if parts.len() > 2 {
            return Err(Rejection::UnsupportedTable(parts.join(".")));
        }
        Ok(parts)
    }

    /// Whether the current bare word is never an operand (unless a call).
    pub fn is_non_operand(&mut self) -> bool {
        self.c.word_upper().is_some_and(|w| NON_OPERANDS.contains(&w.as_str()))
    }

    /// An identifier that may be an alias without `AS`: a bare word that is not a clause word,
    /// or a quoted name that does not spell one (18.16 compares the decoded name).
    pub fn is_implicit_alias(&mut self) -> bool {
        match self.c.kind() {
            Kind::Word | Kind::Quoted => {
                let t = self.c.peek();
                let name = self.c.name_of(&t).to_ascii_uppercase();
                !RESTRICTED_ALIASES.contains(&name.as_str())
            }
            _ => false,
        }
    }

    /// `[AS] alias` where an alias may follow (select lists, table expressions).
    pub fn opt_alias(&mut self, implicit: bool) -> Result<(), Rejection> {
        if self.c.kw("AS") {
            self.c.ident("an alias")?;
        } else if implicit && self.is_implicit_alias() {
            self.c.advance();
        }
        Ok(())
    }
}
