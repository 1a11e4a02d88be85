//! SELECT queries: `WITH`, the clauses of ClickHouse's `ParserSelectQuery`, `FROM` with
//! joins, `ARRAY JOIN` and table functions (`ParserTablesInSelectQuery`), and
//! UNION/EXCEPT/INTERSECT.
//!
//! Names: `FROM t`, `JOIN t` and `FROM db.t` are tables; an unqualified name is a CTE only
//! inside the SELECT whose `WITH` defines it (and the subqueries in it), after its
//! definition. Anywhere ClickHouse might not see the CTE (another UNION branch, a table
//! function's arguments, the CTE's own body) the name is checked as a table: the guard may
//! then refuse a query ClickHouse would have answered from the CTE, never the other way.

use super::Rejection;
use super::lexer::Kind;
use super::names::table_function_safe;
use super::parser::Parser;

impl<'s> Parser<'s> {
    /// A SELECT, or several joined by UNION [ALL|DISTINCT], EXCEPT or INTERSECT; each one
    /// bare or in parentheses.
    pub fn select_union(&mut self) -> Result<(), Rejection> {
        self.nested(|p| {
            loop {
                if p.c.kind() == Kind::LParen {
                    p.subquery()?;
                } else {
                    p.select()?;
                }
                let set_op = p.c.kw_any(&["UNION", "EXCEPT", "INTERSECT"]);
                if !set_op {
                    return Ok(());
                }
                if !p.c.kw("ALL") {
                    p.c.kw("DISTINCT");
                }
            }
        })
    }

    /// One SELECT with its own CTE scope.
    fn select(&mut self) -> Result<(), Rejection> {
        self.push_scope();
        let r = self.select_body();
        self.pop_scope();
        r
    }

    fn select_body(&mut self) -> Result<(), Rejection> {
        if self.c.kw("WITH") {
            self.with_list()?;
        }
        self.c.expect_kw("SELECT")?;
        if self.c.kw("DISTINCT ON") {
            self.c.expect(Kind::LParen, "`(`")?;
            self.expr_list(Kind::RParen)?;
            self.c.expect(Kind::RParen, "`)`")?;
        } else if !self.c.kw("DISTINCT") {
            self.c.kw("ALL");
        }
        if self.c.kw("TOP") {
            self.c.expect(Kind::Number, "a number")?;
            self.c.kw("WITH TIES");
        }
        loop {
            self.expr()?;
            self.opt_alias(true)?;
            if !self.c.eat(Kind::Comma) {
                break;
            }
        }
        if self.c.kw("FROM") {
            self.tables()?;
        }
        for clause in ["PREWHERE", "WHERE"] {
            if self.c.kw(clause) {
                self.expr()?;
            }
        }
        if self.c.kw("GROUP BY") {
            self.group_by()?;
        }
        self.c.kw_any(&["WITH ROLLUP", "WITH CUBE"]);
        self.c.kw("WITH TOTALS");
        if self.c.kw("HAVING") {
            self.expr()?;
        }
        if self.c.kw("WINDOW") {
            loop {
                self.c.ident("a window name")?;
                self.c.expect_kw("AS")?;
                self.window_spec()?;
                if !self.c.eat(Kind::Comma) {
                    break;
                }
            }
        }
        if self.c.kw("QUALIFY") {
            self.expr()?;
        }
        if self.c.kw("ORDER BY") {
            self.order_by()?;
        }
        self.limits()?;
        if self.c.is_kw("SETTINGS") {
            return Err(Rejection::Settings);
        }
        Ok(())
    }

    /// `WITH` elements: `name AS (subquery)` (a CTE) or `expr AS name`.
    fn with_list(&mut self) -> Result<(), Rejection> {
        if self.c.is_kw("RECURSIVE") {
            return Err(self.c.error("no RECURSIVE (not supported by the guard)"));
        }
        loop {
            let cte = self.c.is_ident() && self.c.is_kw_at(1, "AS") && {
                let mut n = 2;
                while self.c.kind_at(n) == Kind::LParen {
                    n += 1;
                }
                n > 2 && (self.c.is_kw_at(n, "SELECT") || self.c.is_kw_at(n, "WITH"))
            };
            if cte {
                let name = self.c.ident("a CTE name")?;
                self.c.advance(); // AS
                // The body sees the CTEs defined before this one, not itself.
                self.subquery()?;
                self.define_cte(name);
            } else {
                self.expr()?;
                self.c.expect_kw("AS")?;
                self.c.ident("an alias")?;
            }
            if !self.c.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    /// The tables after FROM: a table expression, then joins, `ARRAY JOIN`s and commas.
    fn tables(&mut self) -> Result<(), Rejection> {
        self.table_expression()?;
        loop {
            if self.c.kw("LEFT ARRAY JOIN") || self.c.kw("ARRAY JOIN") || self.c.kw("INNER ARRAY JOIN") {
                // Array columns (or arrays) to unfold, not tables.
                loop {
                    self.expr()?;
                    self.opt_alias(false)?;
                    if !self.c.eat(Kind::Comma) {
                        break;
                    }
                }
            } else if self.c.eat(Kind::Comma) {
                self.table_expression()?;
            } else if let Some(cross) = self.join_keywords()? {
                self.table_expression()?;
                if cross {
                    continue;
                }
                if self.c.kw("USING") {
                    let parens = self.c.eat(Kind::LParen);
                    loop {
                        self.expr()?;
                        self.opt_alias(false)?;
                        if !self.c.eat(Kind::Comma) {
                            break;
                        }
                    }
                    if parens {
                        self.c.expect(Kind::RParen, "`)`")?;
                    }
                } else {
                    self.c.expect_kw("ON")?;
                    self.expr()?;
                }
            } else {
                return Ok(());
            }
        }
    }

    /// `[GLOBAL|LOCAL] [ANY|ALL|ASOF|SEMI|ANTI] [INNER|LEFT|RIGHT|FULL|CROSS] [OUTER]
    /// [ANY|…] JOIN`: `Some(is_cross)` once JOIN is read, `None` if no join starts here.
    fn join_keywords(&mut self) -> Result<Option<bool>, Rejection> {
        const STRICTNESS: &[&str] = &["ANY", "ALL", "ASOF", "SEMI", "ANTI", "ONLY"];
        const KINDS: &[&str] = &["INNER", "LEFT", "RIGHT", "FULL", "CROSS"];
        let start = self.c.pos;
        if !self.c.kw("GLOBAL") {
            self.c.kw("LOCAL");
        }
        let strict = self.c.kw_any(STRICTNESS);
        let mut cross = false;
        if let Some(kind) = KINDS.iter().find(|w| self.c.is_kw(w)) {
            cross = *kind == "CROSS";
            self.c.advance();
            if !cross {
                self.c.kw("OUTER");
            }
        }
        if !strict {
            self.c.kw_any(STRICTNESS);
        }
        if self.c.kw("JOIN") {
            return Ok(Some(cross));
        }
        if self.c.pos == start {
            return Ok(None);
        }
        Err(self.c.error("JOIN"))
    }

    /// A table, a table function or a subquery, with its alias, `FINAL` and `SAMPLE`.
    pub fn table_expression(&mut self) -> Result<(), Rejection> {
        if self.c.kind() == Kind::LParen {
            if !self.subquery_ahead() {
                return Err(self.c.error("a table, a table function or a subquery"));
            }
            self.subquery()?;
        } else if self.c.is_ident() && self.c.kind_at(1) == Kind::LParen {
            self.table_function()?;
        } else if self.c.is_ident() {
            let name = self.table_name("a table")?;
            self.table_ref(&name)?;
        } else {
            return Err(self.c.error("a table, a table function or a subquery"));
        }
        self.opt_alias(true)?;
        self.c.kw("FINAL");
        if self.c.kw("SAMPLE") {
            self.sample_ratio()?;
            if self.c.kw("OFFSET") {
                self.sample_ratio()?;
            }
        }
        Ok(())
    }

    fn sample_ratio(&mut self) -> Result<(), Rejection> {
        self.c.expect(Kind::Number, "a sample ratio")?;
        if self.c.eat(Kind::Slash) {
            self.c.expect(Kind::Number, "a number")?;
        }
        Ok(())
    }

    /// `name(args)` in a table position: only [`super::names::SAFE_TABLE_FUNCTIONS`].
    pub fn table_function(&mut self) -> Result<(), Rejection> {
        let name = self.c.ident("a table function")?;
        let lower = name.to_ascii_lowercase();
        if !table_function_safe(&lower) {
            return Err(Rejection::DangerousTableFunction(lower));
        }
        if !self.table_functions.contains(&lower) {
            self.table_functions.push(lower.clone());
        }
        self.c.expect(Kind::LParen, "`(`")?;
        self.without_ctes(|p| if lower == "view" { p.select_union() } else { p.expr_list(Kind::RParen).map(drop) })?;
        self.c.expect(Kind::RParen, "`)`")?;
        Ok(())
    }

    fn group_by(&mut self) -> Result<(), Rejection> {
        if self.c.kw("ALL") {
            return Ok(());
        }
        if self.c.kw("GROUPING SETS") || self.c.kw("ROLLUP") || self.c.kw("CUBE") {
            self.c.expect(Kind::LParen, "`(`")?;
            self.expr_list(Kind::RParen)?;
            self.c.expect(Kind::RParen, "`)`")?;
            return Ok(());
        }
        loop {
            self.expr()?;
            if !self.c.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    fn order_by(&mut self) -> Result<(), Rejection> {
        if self.c.is_kw("ALL") && self.c.kind_at(1) != Kind::Comma {
            self.c.advance();
            self.direction();
            return Ok(());
        }
        self.order_by_list()?;
        if self.c.kw("INTERPOLATE") && self.c.eat(Kind::LParen) {
            self.expr_list(Kind::RParen)?;
            self.c.expect(Kind::RParen, "`)`")?;
        }
        Ok(())
    }

    /// Order elements: `expr [ASC|DESC] [NULLS FIRST|LAST] [COLLATE 'x'] [WITH FILL …]`.
    pub fn order_by_list(&mut self) -> Result<(), Rejection> {
        loop {
            self.expr()?;
            self.direction();
            if self.c.kw("COLLATE") {
                self.c.expect(Kind::Str, "a collation")?;
            }
            if self.c.kw("WITH FILL") {
                for part in ["FROM", "TO", "STEP", "STALENESS"] {
                    if self.c.kw(part) {
                        self.expr()?;
                    }
                }
            }
            if !self.c.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    fn direction(&mut self) {
        self.c.kw_any(&["ASC", "DESC", "ASCENDING", "DESCENDING"]);
        self.c.kw_any(&["NULLS FIRST", "NULLS LAST"]);
    }

    /// `LIMIT n [BY …]`, `LIMIT m, n`, `LIMIT n OFFSET m`, `WITH TIES`, `OFFSET … FETCH …`.
    fn limits(&mut self) -> Result<(), Rejection> {
        for _ in 0..2 {
            if !self.c.kw("LIMIT") {
                break;
            }
            self.expr()?;
            if self.c.eat(Kind::Comma) {
                self.expr()?;
            }
            if self.c.kw("OFFSET") {
                self.expr()?;
            }
            if self.c.kw("BY") {
                loop {
                    self.expr()?;
                    if !self.c.eat(Kind::Comma) {
                        break;
                    }
                }
                continue;
            }
            self.c.kw("WITH TIES");
            break;
        }
        if self.c.kw("OFFSET") {
            self.expr()?;
            if !self.c.kw("ROWS") {
                self.c.kw("ROW");
            }
            if self.c.kw("FETCH") {
                if !self.c.kw("FIRST") {
                    self.c.expect_kw("NEXT")?;
                }
                self.expr()?;
                if !self.c.kw("ROWS") {
                    self.c.expect_kw("ROW")?;
                }
                if !self.c.kw("ONLY") {
                    self.c.expect_kw("WITH TIES")?;
                }
            }
        }
        Ok(())
    }
}
