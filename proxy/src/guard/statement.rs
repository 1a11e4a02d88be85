//! Statements: what kind each is, and the reading ones and INSERT in full. Schema changes are
//! in [`super::ddl`]. Any other statement (SET, USE, KILL, SYSTEM, GRANT, ATTACH, …) is
//! never forwarded.

use super::lexer::Kind;
use super::names::format_allowed;
use super::parser::Parser;
use super::{Rejection, StatementKind};

/// Where INSERT's data starts, when it is not SQL (`FORMAT TSV` and the like).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsertData {
    /// Byte offset of the first byte ClickHouse reads as data.
    pub offset: usize,
}

/// Statements ClickHouse knows that the proxy never forwards: they change the session, the
/// server, access rights or other queries.
const NEVER_FORWARDED: &[&str] = &[
    "SET", "USE", "KILL", "SYSTEM", "GRANT", "REVOKE", "ATTACH", "DETACH", "CHECK", "WATCH", "EXCHANGE", "UNDROP",
    "BACKUP", "RESTORE", "MOVE", "BEGIN", "COMMIT", "ROLLBACK", "EXECUTE", "UNDO",
];

/// EXPLAIN options that only shape EXPLAIN's own output.
const EXPLAIN_OPTIONS: &[&str] = &[
    "header",
    "description",
    "actions",
    "indexes",
    "projections",
    "sorting",
    "json",
    "compact",
    "graph",
    "optimize",
    "oneline",
    "distributed",
    "keep_logical_steps",
    "run_passes",
    "dump_passes",
    "passes",
    "dump_tree",
    "dump_ast",
    "query_tree_passes",
];

impl<'s> Parser<'s> {
    /// One statement; returns its kind and, for `INSERT … FORMAT x` with data, where the
    /// data starts. The cursor is left after the last token of the statement.
    pub fn statement(&mut self) -> Result<(StatementKind, Option<InsertData>), Rejection> {
        let Some(word) = self.c.word_upper() else {
            if self.c.kind() == Kind::LParen {
                self.select_union()?;
                self.output()?;
                return Ok((StatementKind::Select, None));
            }
            return Err(self.c.error("a statement"));
        };
        let kind = match word.as_str() {
            "SELECT" | "WITH" => {
                self.select_union()?;
                self.output()?;
                StatementKind::Select
            }
            "INSERT" => return self.insert(),
            "SHOW" => {
                self.show()?;
                self.output()?;
                StatementKind::Show
            }
            "DESC" | "DESCRIBE" => {
                self.describe()?;
                self.output()?;
                StatementKind::Describe
            }
            "EXISTS" => {
                self.exists()?;
                self.output()?;
                StatementKind::Show
            }
            "EXPLAIN" => {
                self.explain()?;
                self.output()?;
                StatementKind::Explain
            }
            _ => match self.ddl()? {
                Some(kind) => kind,
                None => {
                    return Err(match NEVER_FORWARDED.iter().find(|w| **w == word) {
                        Some(w) => Rejection::Statement(w),
                        None => Rejection::Unparseable(format!("unknown statement `{word}`")),
                    });
                }
            },
        };
        Ok((kind, None))
    }

    /// `[INTO OUTFILE …] [FORMAT name] [SETTINGS …]` after a reading statement.
    fn output(&mut self) -> Result<(), Rejection> {
        if self.c.is_phrase("INTO OUTFILE") {
            return Err(Rejection::IntoOutfile);
        }
        if self.c.kw("FORMAT") {
            let name = self.c.ident("a format name")?;
            if !format_allowed(name) {
                return Err(Rejection::Format(name.to_owned()));
            }
            self.format = Some(name.to_owned());
        }
        if self.c.is_kw("SETTINGS") {
            return Err(Rejection::Settings);
        }
        Ok(())
    }

    fn insert(&mut self) -> Result<(StatementKind, Option<InsertData>), Rejection> {
        self.c.expect_kw("INSERT INTO")?;
        self.c.kw("TABLE");
        if self.c.is_kw("FUNCTION") {
            return Err(Rejection::UnsupportedTable("INSERT INTO FUNCTION".into()));
        }
        let target = self.table_name("a table")?;
        self.table_ref(&target)?;
        if self.c.eat(Kind::LParen) {
            loop {
                if !self.c.eat(Kind::Star) {
                    self.table_name("a column")?;
                }
                if !self.c.eat(Kind::Comma) {
                    break;
                }
            }
            self.c.expect(Kind::RParen, "`)`")?;
        }
        if self.c.is_kw("SETTINGS") {
            return Err(Rejection::Settings);
        }
        if self.c.kw("VALUES") {
            self.values()?;
            return Ok((StatementKind::Insert, None));
        }
        if self.c.kw("FORMAT") {
            let t = self.c.peek();
            let name = self.c.ident("a format name")?;
            if !format_allowed(name) {
                return Err(Rejection::Format(name.to_owned()));
            }
            self.format = Some(name.to_owned());
            if name.eq_ignore_ascii_case("Values") {
                // Values data is SQL to ClickHouse (expressions are evaluated): check it.
                self.values()?;
                return Ok((StatementKind::Insert, None));
            }
            return Ok((StatementKind::Insert, Some(self.data_after(t.end)?)));
        }
        if self.c.is_kw("SELECT") || self.c.is_kw("WITH") || self.c.kind() == Kind::LParen {
            self.select_union()?;
            if self.c.is_kw("SETTINGS") {
                return Err(Rejection::Settings);
            }
            return Ok((StatementKind::Insert, None));
        }
        Err(self.c.error("VALUES, FORMAT or SELECT"))
    }

    /// Where ClickHouse starts reading data after `FORMAT name` (`ParserInsertQuery`): after
    /// spaces, tabs and form feeds, and one line break. Refuses what ClickHouse would read
    /// as more of the statement: `SETTINGS`, or a comment (which its lexer skips).
    fn data_after(&self, name_end: usize) -> Result<InsertData, Rejection> {
        let src = self.c.src.as_bytes();
        let rest = &self.c.src[name_end..];
        let significant = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if significant.starts_with("--") || significant.starts_with("//") || significant.starts_with("/*") {
            return Err(Rejection::Ambiguous("a comment before INSERT data"));
        }
        let word_end =
            significant.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(significant.len());
        if significant[..word_end].eq_ignore_ascii_case("SETTINGS") {
            return Err(Rejection::Settings);
        }
        if rest.starts_with(';') {
            return Err(Rejection::Ambiguous("`;` right after the format name"));
        }
        let mut i = name_end;
        while matches!(src.get(i), Some(b' ' | b'\t' | 0x0c)) {
            i += 1;
        }
        if src.get(i) == Some(&b'\r') {
            i += 1;
        }
        if src.get(i) == Some(&b'\n') {
            i += 1;
        }
        Ok(InsertData { offset: i })
    }

    /// VALUES rows: `(expr, …)`, optionally separated by commas, to the end.
    fn values(&mut self) -> Result<(), Rejection> {
        loop {
            self.c.expect(Kind::LParen, "`(` starting a row of values")?;
            self.expr_list(Kind::RParen)?;
            self.c.expect(Kind::RParen, "`)`")?;
            self.c.eat(Kind::Comma);
            if matches!(self.c.kind(), Kind::End | Kind::Semicolon) {
                return Ok(());
            }
        }
    }

    fn show(&mut self) -> Result<(), Rejection> {
        self.c.expect_kw("SHOW")?;
        self.c.kw("FULL");
        self.c.kw("TEMPORARY");
        if self.c.kw("TABLES") {
            let database = if self.c.kw("FROM") || self.c.kw("IN") {
                self.c.ident("a database")?.to_owned()
            } else {
                self.default_database().to_owned()
            };
            self.database_ref(&database);
            self.like_limit()?;
        } else if self.c.kw("DATABASES") {
            self.table_ref(&["system", "databases"])?;
            self.like_limit()?;
        } else if self.c.kw("DICTIONARIES") {
            self.table_ref(&["system", "dictionaries"])?;
            if self.c.kw("FROM") || self.c.kw("IN") {
                self.c.ident("a database")?;
            }
            self.like_limit()?;
        } else if self.c.kw("PROCESSLIST") {
            self.table_ref(&["system", "processes"])?;
        } else if self.c.kw("CREATE") {
            self.c.kw("TEMPORARY");
            if self.c.kw("DATABASE") {
                let db = self.c.ident("a database")?;
                self.database_ref(db);
            } else {
                self.c.kw_any(&["TABLE", "VIEW", "DICTIONARY"]);
                let name = self.table_name("a table")?;
                self.table_ref(&name)?;
            }
        } else if self.c.kw("COLUMNS") || self.c.kw("FIELDS") {
            if !self.c.kw("FROM") {
                self.c.expect_kw("IN")?;
            }
            let mut name = self.table_name("a table")?;
            if self.c.kw("FROM") || self.c.kw("IN") {
                let db = self.c.ident("a database")?;
                if name.len() == 1 {
                    name.insert(0, db);
                }
            }
            self.table_ref(&name)?;
            self.like_limit()?;
        } else {
            return Err(Rejection::Statement("this kind of SHOW"));
        }
        Ok(())
    }

    fn like_limit(&mut self) -> Result<(), Rejection> {
        self.c.kw("NOT");
        if self.c.kw("LIKE") || self.c.kw("ILIKE") {
            self.c.expect(Kind::Str, "a pattern")?;
        }
        if self.c.kw("LIMIT") {
            self.expr()?;
        }
        Ok(())
    }

    /// `DESCRIBE [TABLE] name | table_function(…) | (subquery)`.
    fn describe(&mut self) -> Result<(), Rejection> {
        self.c.advance();
        self.c.kw("TABLE");
        if self.c.kind() == Kind::LParen {
            if !self.subquery_ahead() {
                return Err(self.c.error("a subquery"));
            }
            return self.subquery();
        }
        if self.c.is_ident() && self.c.kind_at(1) == Kind::LParen {
            return self.table_function();
        }
        let name = self.table_name("a table")?;
        self.table_ref(&name)
    }

    /// `EXISTS [TEMPORARY] [TABLE|VIEW|DICTIONARY] name` or `EXISTS DATABASE db`.
    fn exists(&mut self) -> Result<(), Rejection> {
        self.c.advance();
        self.c.kw("TEMPORARY");
        if self.c.kw("DATABASE") {
            let db = self.c.ident("a database")?;
            self.database_ref(db);
            return Ok(());
        }
        self.c.kw_any(&["TABLE", "VIEW", "DICTIONARY"]);
        let name = self.table_name("a table")?;
        self.table_ref(&name)
    }

    /// `EXPLAIN [AST|SYNTAX|QUERY TREE|PLAN|PIPELINE|ESTIMATE] [option = value, …] SELECT …`.
    fn explain(&mut self) -> Result<(), Rejection> {
        self.c.advance();
        self.c.kw_any(&["AST", "SYNTAX", "QUERY TREE", "PLAN", "PIPELINE", "ESTIMATE"]);
        while self.c.kind() == Kind::Word && self.c.kind_at(1) == Kind::Eq {
            let t = self.c.peek();
            let option = self.c.name_of(&t).to_ascii_lowercase();
            if !EXPLAIN_OPTIONS.contains(&option.as_str()) {
                return Err(Rejection::Settings);
            }
            self.c.advance();
            self.c.advance();
            self.c.expect(Kind::Number, "a number")?;
            if !self.c.eat(Kind::Comma) {
                break;
            }
        }
        self.select_union()
    }
}
