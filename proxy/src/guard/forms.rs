//! The special forms of ClickHouse's expression parsers, beside the operand/operator walk of
//! [`super::expr`]: the SQL-standard forms inside a call's parentheses (`CAST(x AS T)`,
//! `EXTRACT`, `SUBSTRING`, `TRIM`), data types, `CASE … END`, `INTERVAL n UNIT`, lambdas,
//! column transformers (`EXCEPT`/`REPLACE`/`APPLY`) and window specifications.

use super::Rejection;
use super::lexer::Kind;
use super::names::function_allowed;
use super::parser::{Parser, Shape};

impl<'s> Parser<'s> {
    /// The SQL-standard forms inside a call's parentheses. The cursor is after `(`; returns
    /// false (nothing consumed) when the call is an ordinary one.
    pub(super) fn special_call(&mut self, upper: &str) -> Result<bool, Rejection> {
        match upper {
            "EXTRACT" if self.c.kind() == Kind::Word && self.c.is_kw_at(1, "FROM") => {
                self.c.advance();
                self.c.advance();
                self.expr()?;
            }
            "TRIM" if ["BOTH", "LEADING", "TRAILING"].iter().any(|w| self.c.is_kw(w)) => {
                self.c.advance();
                if !self.c.is_kw("FROM") {
                    self.expr()?;
                }
                self.c.expect_kw("FROM")?;
                self.expr()?;
            }
            _ => return Ok(false),
        }
        self.c.expect(Kind::RParen, "`)`")?;
        Ok(true)
    }

    /// `CAST(x AS T)` or `CAST(x, 'T')`.
    pub(super) fn cast(&mut self) -> Result<Shape, Rejection> {
        self.c.advance();
        self.c.advance();
        self.expr()?;
        if self.c.kw("AS") {
            self.data_type()?;
        } else {
            self.c.expect(Kind::Comma, "AS or `,`")?;
            self.expr()?;
        }
        self.c.expect(Kind::RParen, "`)`")?;
        Ok(Shape::Other)
    }

    /// A data type: `Name`, `Name(args)`; arguments are types, numbers, strings, enum
    /// elements (`'a' = 1`) and named elements (`a String`).
    pub fn data_type(&mut self) -> Result<(), Rejection> {
        self.nested(|p| {
            p.c.ident("a type")?;
            if p.c.eat(Kind::LParen) {
                if p.c.eat(Kind::RParen) {
                    return Ok(());
                }
                loop {
                    p.type_argument()?;
                    if !p.c.eat(Kind::Comma) {
                        break;
                    }
                }
                p.c.expect(Kind::RParen, "`)`")?;
            }
            Ok(())
        })
    }

    pub(super) fn type_argument(&mut self) -> Result<(), Rejection> {
        match self.c.kind() {
            Kind::Str => {
                self.c.advance();
                if self.c.eat(Kind::Eq) {
                    self.c.eat(Kind::Minus);
                    self.c.expect(Kind::Number, "a number")?;
                }
            }
            Kind::Minus | Kind::Number => {
                self.c.eat(Kind::Minus);
                self.c.expect(Kind::Number, "a number")?;
            }
            Kind::Word | Kind::Quoted if matches!(self.c.kind_at(1), Kind::Word | Kind::Quoted) => {
                self.c.advance();
                self.data_type()?;
            }
            _ => self.data_type()?,
        }
        Ok(())
    }

    /// `CASE [x] WHEN a THEN b … [ELSE c] END`.
    pub(super) fn case(&mut self) -> Result<Shape, Rejection> {
        self.c.advance();
        if !self.c.is_kw("WHEN") {
            self.expr()?;
        }
        self.c.expect_kw("WHEN")?;
        loop {
            self.expr()?;
            self.c.expect_kw("THEN")?;
            self.expr()?;
            if !self.c.kw("WHEN") {
                break;
            }
        }
        if self.c.kw("ELSE") {
            self.expr()?;
        }
        self.c.expect_kw("END")?;
        Ok(Shape::Other)
    }

    /// `INTERVAL expr UNIT` or `INTERVAL 'n unit'`.
    pub(super) fn interval(&mut self) -> Result<Shape, Rejection> {
        self.c.advance();
        if self.c.kind() == Kind::Str && !self.interval_unit_at(1) {
            self.c.advance();
            return Ok(Shape::Other);
        }
        self.expr()?;
        if !self.interval_unit_at(0) {
            return Err(self.c.error("an interval unit (DAY, HOUR, …)"));
        }
        self.c.advance();
        Ok(Shape::Other)
    }

    pub(super) fn interval_unit_at(&mut self, n: usize) -> bool {
        const UNITS: &[&str] = &[
            "NANOSECOND",
            "MICROSECOND",
            "MILLISECOND",
            "SECOND",
            "MINUTE",
            "HOUR",
            "DAY",
            "WEEK",
            "MONTH",
            "QUARTER",
            "YEAR",
        ];
        let t = self.c.peek_at(n);
        if t.kind != Kind::Word {
            return false;
        }
        let w = self.c.src[t.start..t.end].to_ascii_uppercase();
        UNITS.iter().any(|u| w == *u || w.strip_suffix('S') == Some(u))
    }

    /// Whether a lambda starts here: `x ->` or `(x, y) ->`.
    pub(super) fn lambda_ahead(&mut self) -> bool {
        if matches!(self.c.kind(), Kind::Word | Kind::Quoted) {
            return self.c.kind_at(1) == Kind::Arrow;
        }
        if self.c.kind() != Kind::LParen {
            return false;
        }
        let mut n = 1;
        loop {
            if !matches!(self.c.kind_at(n), Kind::Word | Kind::Quoted) {
                return false;
            }
            match self.c.kind_at(n + 1) {
                Kind::Comma => n += 2,
                Kind::RParen => return self.c.kind_at(n + 2) == Kind::Arrow,
                _ => return false,
            }
        }
    }

    pub(super) fn lambda(&mut self) -> Result<(), Rejection> {
        while self.c.kind() != Kind::Arrow {
            self.c.advance();
        }
        self.c.advance();
        self.expr()?;
        Ok(())
    }

    /// `EXCEPT`, `REPLACE` and `APPLY` after `*`, `t.*` or `COLUMNS(…)`.
    pub(super) fn column_transformers(&mut self) -> Result<(), Rejection> {
        loop {
            if self.c.is_kw("EXCEPT") && !(self.c.is_kw_at(1, "SELECT") || self.subquery_after(1)) {
                self.c.advance();
                self.c.kw("STRICT");
                if self.c.eat(Kind::LParen) {
                    self.expr_list(Kind::RParen)?;
                    self.c.expect(Kind::RParen, "`)`")?;
                } else {
                    self.c.ident("a column")?;
                }
            } else if self.c.is_kw("REPLACE") && self.c.kind_at(1) == Kind::LParen {
                self.c.advance();
                self.c.advance();
                self.expr_list(Kind::RParen)?;
                self.c.expect(Kind::RParen, "`)`")?;
            } else if self.c.is_kw("APPLY") && self.c.kind_at(1) == Kind::LParen {
                self.c.advance();
                self.c.advance();
                if self.lambda_ahead() {
                    self.lambda()?;
                } else {
                    let name = self.c.ident("a function")?;
                    if self.c.eat(Kind::LParen) {
                        self.expr_list(Kind::RParen)?;
                        self.c.expect(Kind::RParen, "`)`")?;
                    }
                    if !function_allowed(name) {
                        return Err(Rejection::Function(name.to_owned()));
                    }
                }
                self.c.expect(Kind::RParen, "`)`")?;
            } else {
                return Ok(());
            }
        }
    }

    pub(super) fn subquery_after(&mut self, n: usize) -> bool {
        let mut i = n;
        while self.c.kind_at(i) == Kind::LParen {
            i += 1;
        }
        i > n && (self.c.is_kw_at(i, "SELECT") || self.c.is_kw_at(i, "WITH"))
    }

    /// `(name? PARTITION BY … ORDER BY … ROWS|RANGE|GROUPS frame)`.
    pub fn window_spec(&mut self) -> Result<(), Rejection> {
        self.c.expect(Kind::LParen, "`(`")?;
        if self.c.is_ident() && !self.c.is_phrase("PARTITION BY") && !self.c.is_phrase("ORDER BY") && !self.is_frame() {
            self.c.advance();
        }
        if self.c.kw("PARTITION BY") {
            self.expr_list(Kind::RParen)?;
        }
        if self.c.kw("ORDER BY") {
            self.order_by_list()?;
        }
        if self.is_frame() {
            self.c.advance();
            if self.c.kw("BETWEEN") {
                self.frame_bound()?;
                self.c.expect_kw("AND")?;
            }
            self.frame_bound()?;
        }
        self.c.expect(Kind::RParen, "`)`")?;
        Ok(())
    }

    pub(super) fn is_frame(&mut self) -> bool {
        self.c.is_kw("ROWS") || self.c.is_kw("RANGE") || self.c.is_kw("GROUPS")
    }

    pub(super) fn frame_bound(&mut self) -> Result<(), Rejection> {
        if self.c.kw("UNBOUNDED PRECEDING") || self.c.kw("UNBOUNDED FOLLOWING") || self.c.kw("CURRENT ROW") {
            return Ok(());
        }
        self.prefixed_operand()?;
        if self.c.kw("PRECEDING") || self.c.kw("FOLLOWING") {
            Ok(())
        } else {
            Err(self.c.error("PRECEDING or FOLLOWING"))
        }
    }
}
