//! Schema changes and mutations: CREATE (database, table, view, materialized view), ALTER
//! TABLE, DROP, TRUNCATE, RENAME, OPTIMIZE, DELETE FROM and UPDATE.
//!
//! Every table they name or copy from is reported (`CREATE TABLE t AS other`, `ATTACH
//! PARTITION … FROM other`, a view's SELECT, a materialized view's `TO` table). What could
//! read outside the policy is refused outright: engines other than the local ones
//! (`Merge`, `Distributed`, `Buffer`, `Dictionary`, `File`, `URL`, `MySQL`, `Replicated*` —
//! which joins another table's replicas —, …), table settings other than the storage
//! layout ones, `ON CLUSTER`, `FETCH`/`FREEZE`/moves to disks, dictionaries, functions,
//! users and grants.

use super::lexer::Kind;
use super::parser::Parser;
use super::{Rejection, StatementKind};

/// Engines a table may be created with: local storage that reads nothing else.
const ENGINES: &[&str] = &[
    "MergeTree",
    "ReplacingMergeTree",
    "SummingMergeTree",
    "AggregatingMergeTree",
    "CollapsingMergeTree",
    "VersionedCollapsingMergeTree",
    "Memory",
    "Log",
    "TinyLog",
    "StripeLog",
    "Null",
];

/// Database engines: local ones only.
const DATABASE_ENGINES: &[&str] = &["Atomic", "Ordinary", "Memory"];

/// Table settings that only shape storage.
const TABLE_SETTINGS: &[&str] = &[
    "index_granularity",
    "index_granularity_bytes",
    "enable_mixed_granularity_parts",
    "min_bytes_for_wide_part",
    "min_rows_for_wide_part",
    "merge_with_ttl_timeout",
    "ttl_only_drop_parts",
    "allow_nullable_key",
    "min_index_granularity_bytes",
];

impl<'s> Parser<'s> {
    /// A schema change or mutation, or `None` when the statement is none of those.
    pub fn ddl(&mut self) -> Result<Option<StatementKind>, Rejection> {
        let Some(word) = self.c.word_upper() else { return Ok(None) };
        let kind = match word.as_str() {
            "CREATE" => {
                self.create()?;
                StatementKind::Create
            }
            "ALTER" => {
                self.alter()?;
                StatementKind::Alter
            }
            "DROP" => {
                self.drop_statement()?;
                StatementKind::Drop
            }
            "TRUNCATE" => {
                self.c.advance();
                self.c.kw("TEMPORARY");
                self.c.kw("TABLE");
                self.c.kw("IF EXISTS");
                self.target()?;
                self.no_cluster()?;
                StatementKind::Truncate
            }
            "RENAME" => {
                self.c.advance();
                self.c.expect_kw("TABLE")?;
                loop {
                    self.target()?;
                    self.c.expect_kw("TO")?;
                    self.target()?;
                    if !self.c.eat(Kind::Comma) {
                        break;
                    }
                }
                self.no_cluster()?;
                StatementKind::Rename
            }
            "OPTIMIZE" => {
                self.c.advance();
                self.c.expect_kw("TABLE")?;
                self.target()?;
                self.no_cluster()?;
                if self.c.kw("PARTITION") {
                    self.partition()?;
                }
                self.c.kw("FINAL");
                if self.c.kw("DEDUPLICATE") && self.c.kw("BY") {
                    self.expr_list(Kind::End)?;
                }
                StatementKind::Optimize
            }
            "DELETE" => {
                self.c.advance();
                self.c.expect_kw("FROM")?;
                self.target()?;
                self.no_cluster()?;
                if self.c.kw("IN PARTITION") {
                    self.partition()?;
                }
                self.c.expect_kw("WHERE")?;
                self.expr()?;
                StatementKind::Delete
            }
            "UPDATE" => {
                self.c.advance();
                self.target()?;
                self.c.expect_kw("SET")?;
                self.assignments()?;
                self.c.expect_kw("WHERE")?;
                self.expr()?;
                StatementKind::Update
            }
            _ => return Ok(None),
        };
        if self.c.is_kw("SETTINGS") {
            return Err(Rejection::Settings);
        }
        Ok(Some(kind))
    }

    /// A `[db.]table` the statement acts on.
    fn target(&mut self) -> Result<(), Rejection> {
        let name = self.table_name("a table")?;
        self.table_ref(&name)
    }

    fn no_cluster(&mut self) -> Result<(), Rejection> {
        if self.c.is_phrase("ON CLUSTER") {
            return Err(Rejection::Statement("ON CLUSTER"));
        }
        Ok(())
    }

    fn create(&mut self) -> Result<(), Rejection> {
        self.c.advance();
        self.c.kw("OR REPLACE");
        if self.c.kw("DATABASE") {
            self.c.kw("IF NOT EXISTS");
            let db = self.c.ident("a database")?;
            self.database_ref(db);
            self.no_cluster()?;
            if self.c.kw("ENGINE") {
                self.c.expect(Kind::Eq, "`=`")?;
                let engine = self.c.ident("an engine")?;
                if !DATABASE_ENGINES.contains(&engine) {
                    return Err(Rejection::Engine(engine.to_owned()));
                }
            }
            return Ok(());
        }
        let materialized = self.c.kw("MATERIALIZED");
        if self.c.kw("VIEW") {
            self.c.kw("IF NOT EXISTS");
            self.target()?;
            self.no_cluster()?;
            if materialized {
                if self.c.kw("TO") {
                    self.target()?;
                }
                if self.c.kind() == Kind::LParen {
                    self.columns()?;
                }
                self.table_options()?;
                self.c.kw("POPULATE");
            } else if self.c.kind() == Kind::LParen {
                self.columns()?;
            }
            self.c.expect_kw("AS")?;
            return self.select_union();
        }
        if materialized {
            return Err(self.c.error("VIEW"));
        }
        self.c.kw("TEMPORARY");
        if !self.c.kw("TABLE") {
            return Err(Rejection::Statement("this kind of CREATE"));
        }
        self.c.kw("IF NOT EXISTS");
        self.target()?;
        self.no_cluster()?;
        if self.c.kind() == Kind::LParen {
            self.columns()?;
        } else if self.c.kw("AS") {
            if self.c.is_kw("SELECT") || self.c.is_kw("WITH") || self.subquery_ahead() {
                return self.select_union();
            }
            if self.c.is_ident() && self.c.kind_at(1) == Kind::LParen {
                return self.table_function();
            }
            // The structure of another table.
            self.target()?;
        }
        self.table_options()?;
        if self.c.kw("AS") {
            self.select_union()?;
        }
        Ok(())
    }

    /// `(column definitions, INDEX …, CONSTRAINT …)`.
    fn columns(&mut self) -> Result<(), Rejection> {
        self.c.expect(Kind::LParen, "`(`")?;
        loop {
            if self.c.kw("INDEX") {
                self.index_definition()?;
            } else if self.c.kw("CONSTRAINT") {
                self.c.ident("a constraint name")?;
                if !self.c.kw("CHECK") {
                    self.c.expect_kw("ASSUME")?;
                }
                self.expr()?;
            } else {
                self.column_definition()?;
            }
            if !self.c.eat(Kind::Comma) {
                break;
            }
        }
        self.c.expect(Kind::RParen, "`)`")?;
        Ok(())
    }

    /// `name [type] [NULL|NOT NULL] [DEFAULT|MATERIALIZED|ALIAS|EPHEMERAL expr] [COMMENT 's']
    /// [CODEC(…)] [TTL expr]`.
    fn column_definition(&mut self) -> Result<(), Rejection> {
        self.table_name("a column")?;
        let defaults = ["DEFAULT", "MATERIALIZED", "ALIAS", "EPHEMERAL"];
        let clause = |p: &mut Self| {
            defaults.iter().any(|w| p.c.is_kw(w))
                || ["COMMENT", "CODEC", "TTL", "NULL", "NOT"].iter().any(|w| p.c.is_kw(w))
        };
        if self.c.is_ident() && !clause(self) {
            self.data_type()?;
        }
        if !self.c.kw("NULL") {
            self.c.kw("NOT NULL");
        }
        if defaults.iter().any(|w| self.c.kw(w)) && !matches!(self.c.kind(), Kind::Comma | Kind::RParen) {
            self.expr()?;
        }
        if self.c.kw("COMMENT") {
            self.c.expect(Kind::Str, "a comment")?;
        }
        if self.c.kw("CODEC") {
            self.c.expect(Kind::LParen, "`(`")?;
            loop {
                self.data_type()?;
                if !self.c.eat(Kind::Comma) {
                    break;
                }
            }
            self.c.expect(Kind::RParen, "`)`")?;
        }
        if self.c.kw("TTL") {
            self.expr()?;
        }
        Ok(())
    }

    /// `name expr TYPE t(args) [GRANULARITY n]`.
    fn index_definition(&mut self) -> Result<(), Rejection> {
        self.c.kw("IF NOT EXISTS");
        self.c.ident("an index name")?;
        self.expr()?;
        self.c.expect_kw("TYPE")?;
        self.data_type()?;
        if self.c.kw("GRANULARITY") {
            self.c.expect(Kind::Number, "a number")?;
        }
        Ok(())
    }

    /// `ENGINE = …`, `PARTITION BY`, `PRIMARY KEY`, `ORDER BY`, `SAMPLE BY`, `TTL`,
    /// `SETTINGS`, `COMMENT`, in any order.
    fn table_options(&mut self) -> Result<(), Rejection> {
        loop {
            if self.c.kw("ENGINE") {
                self.c.eat(Kind::Eq);
                let engine = self.c.ident("an engine")?;
                if !ENGINES.contains(&engine) {
                    return Err(Rejection::Engine(engine.to_owned()));
                }
                if self.c.eat(Kind::LParen) {
                    self.expr_list(Kind::RParen)?;
                    self.c.expect(Kind::RParen, "`)`")?;
                }
            } else if self.c.kw("PARTITION BY")
                || self.c.kw("PRIMARY KEY")
                || self.c.kw("ORDER BY")
                || self.c.kw("SAMPLE BY")
            {
                self.expr()?;
            } else if self.c.kw("TTL") {
                self.ttl_list()?;
            } else if self.c.kw("SETTINGS") {
                self.table_settings()?;
            } else if self.c.kw("COMMENT") {
                self.c.expect(Kind::Str, "a comment")?;
            } else {
                return Ok(());
            }
        }
    }

    fn ttl_list(&mut self) -> Result<(), Rejection> {
        loop {
            self.expr()?;
            if self.c.is_kw("TO") || self.c.is_kw("RECOMPRESS") || self.c.is_kw("GROUP") || self.c.is_kw("WHERE") {
                return Err(self.c.error("a TTL that only deletes"));
            }
            self.c.kw("DELETE");
            if !self.c.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    fn table_settings(&mut self) -> Result<(), Rejection> {
        loop {
            let t = self.c.peek();
            let name = self.c.ident("a setting")?;
            if !TABLE_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) || t.kind != Kind::Word {
                return Err(Rejection::TableSetting(name.to_owned()));
            }
            self.c.expect(Kind::Eq, "`=`")?;
            if !matches!(self.c.kind(), Kind::Number | Kind::Str) {
                return Err(self.c.error("a number or a string"));
            }
            self.c.advance();
            if !self.c.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    fn drop_statement(&mut self) -> Result<(), Rejection> {
        self.c.advance();
        if self.c.kw("DATABASE") {
            self.c.kw("IF EXISTS");
            let db = self.c.ident("a database")?;
            self.database_ref(db);
        } else {
            self.c.kw("TEMPORARY");
            if !(self.c.kw("TABLE") || self.c.kw("VIEW") || self.c.kw("DICTIONARY")) {
                return Err(Rejection::Statement("this kind of DROP"));
            }
            self.c.kw("IF EXISTS");
            self.c.kw("IF EMPTY");
            loop {
                self.target()?;
                if !self.c.eat(Kind::Comma) {
                    break;
                }
            }
        }
        self.no_cluster()?;
        if !self.c.kw("SYNC") {
            self.c.kw("NO DELAY");
        }
        Ok(())
    }

    fn alter(&mut self) -> Result<(), Rejection> {
        self.c.advance();
        self.c.expect_kw("TABLE")?;
        self.target()?;
        self.no_cluster()?;
        loop {
            self.alter_action()?;
            if !self.c.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    fn alter_action(&mut self) -> Result<(), Rejection> {
        let position = |p: &mut Self| -> Result<(), Rejection> {
            if p.c.kw("AFTER") {
                p.table_name("a column")?;
            } else {
                p.c.kw("FIRST");
            }
            Ok(())
        };
        if self.c.kw("ADD COLUMN") {
            self.c.kw("IF NOT EXISTS");
            self.column_definition()?;
            position(self)?;
        } else if self.c.kw("MODIFY COLUMN") {
            self.c.kw("IF EXISTS");
            self.column_definition()?;
            position(self)?;
        } else if self.c.kw("DROP COLUMN") || self.c.kw("MATERIALIZE COLUMN") {
            self.c.kw("IF EXISTS");
            self.table_name("a column")?;
        } else if self.c.kw("CLEAR COLUMN") {
            self.c.kw("IF EXISTS");
            self.table_name("a column")?;
            if self.c.kw("IN PARTITION") {
                self.partition()?;
            }
        } else if self.c.kw("RENAME COLUMN") {
            self.c.kw("IF EXISTS");
            self.table_name("a column")?;
            self.c.expect_kw("TO")?;
            self.table_name("a column")?;
        } else if self.c.kw("COMMENT COLUMN") {
            self.c.kw("IF EXISTS");
            self.table_name("a column")?;
            self.c.expect(Kind::Str, "a comment")?;
        } else if self.c.kw("DELETE") {
            if self.c.kw("IN PARTITION") {
                self.partition()?;
            }
            self.c.expect_kw("WHERE")?;
            self.expr()?;
        } else if self.c.kw("UPDATE") {
            self.assignments()?;
            if self.c.kw("IN PARTITION") {
                self.partition()?;
            }
            self.c.expect_kw("WHERE")?;
            self.expr()?;
        } else if self.c.kw("ADD INDEX") {
            self.index_definition()?;
            position(self)?;
        } else if self.c.kw("DROP INDEX") || self.c.kw("MATERIALIZE INDEX") || self.c.kw("CLEAR INDEX") {
            self.c.kw("IF EXISTS");
            self.c.ident("an index")?;
            if self.c.kw("IN PARTITION") {
                self.partition()?;
            }
        } else if self.c.kw("DROP PART") || self.c.kw("DETACH PART") || self.c.kw("ATTACH PART") {
            self.c.expect(Kind::Str, "a part name")?;
        } else if self.c.kw("DROP PARTITION") || self.c.kw("DETACH PARTITION") {
            self.partition()?;
        } else if self.c.kw("ATTACH PARTITION") {
            self.partition()?;
            if self.c.kw("FROM") {
                self.target()?;
            }
        } else if self.c.kw("REPLACE PARTITION") {
            self.partition()?;
            self.c.expect_kw("FROM")?;
            self.target()?;
        } else if self.c.kw("MOVE PARTITION") {
            self.partition()?;
            self.c.expect_kw("TO TABLE")?;
            self.target()?;
        } else if self.c.kw("MODIFY TTL") {
            self.ttl_list()?;
        } else if self.c.kw("REMOVE TTL") || self.c.kw("MATERIALIZE TTL") {
        } else if self.c.kw("MODIFY ORDER BY") {
            self.expr()?;
        } else if self.c.kw("MODIFY SETTING") {
            self.table_settings()?;
        } else if self.c.kw("MODIFY COMMENT") {
            self.c.expect(Kind::Str, "a comment")?;
        } else {
            return Err(Rejection::Statement("this kind of ALTER"));
        }
        Ok(())
    }

    /// `col = expr, …`.
    fn assignments(&mut self) -> Result<(), Rejection> {
        loop {
            self.table_name("a column")?;
            self.c.expect(Kind::Eq, "`=`")?;
            self.expr()?;
            if !self.c.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    /// A partition: `ID 'x'`, `ALL`, or an expression.
    fn partition(&mut self) -> Result<(), Rejection> {
        if self.c.kw("ID") {
            self.c.expect(Kind::Str, "a partition id")?;
        } else if !self.c.kw("ALL") {
            self.expr()?;
        }
        Ok(())
    }
}
