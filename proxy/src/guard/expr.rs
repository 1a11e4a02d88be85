//! Expressions. The parser follows operands and operators rather than precedence: what the
//! guard needs from an expression is every function it calls, every subquery in it, and the
//! operand after each IN, which ClickHouse reads as a table when it is a bare name
//! (`x IN t`, `x NOT IN db.t`, `x GLOBAL IN (t)`, `in(x, t)`, `globalNotIn(x, t)`, …).
//!
//! Special forms are those of ClickHouse's parsers: `CAST(x AS T)`, `x::T`, `EXTRACT(DAY
//! FROM d)`, `SUBSTRING(s FROM a FOR b)`, `TRIM(BOTH c FROM s)`, `INTERVAL n UNIT`,
//! `DATE 'd'`, `CASE … END`, `EXISTS (subquery)`,
//! `= ANY (subquery)`, lambdas, `*`/`t.*`/`COLUMNS(…)` with `EXCEPT`/`REPLACE`/`APPLY`,
//! parametric aggregates `f(p)(x)`, `f(DISTINCT x)` (= `fDistinct`), and window functions.
//!
//! Functions are checked by the name ClickHouse calls: a call's own name (bare or quoted),
//! `APPLY(name)`, and a bare name as the first argument of a higher-order function, which
//! 26.x calls as a lambda (`arrayMap(file, arr)` reads files).
//!
//! `POSITION(a IN b)` is no special form here: 26.x reads it as position(b, a), but 18.16
//! reads `a IN b` and, when `a` is a key column, reads the table `b` for index analysis
//! before it finds position's arguments wrong (the fuzz found it). So `b` is a table.

use super::Rejection;
use super::lexer::Kind;
use super::names::{function_allowed, higher_order, in_family};
use super::parser::{Parser, Shape};

/// What follows an operand.
enum Operator {
    /// IN, NOT IN, GLOBAL IN, GLOBAL NOT IN.
    In,
    Other,
}

impl<'s> Parser<'s> {
    /// One expression.
    pub fn expr(&mut self) -> Result<Shape, Rejection> {
        self.nested(Self::expr_inner)
    }

    pub(super) fn expr_inner(&mut self) -> Result<Shape, Rejection> {
        if self.lambda_ahead() {
            self.lambda()?;
            return Ok(Shape::Other);
        }
        let mut shape = self.prefixed_operand()?;
        loop {
            if self.c.kw("IS") {
                self.c.kw("NOT");
                if !self.c.kw("NULL") {
                    self.c.expect_kw("DISTINCT FROM")?;
                    self.prefixed_operand()?;
                }
            } else {
                match self.operator() {
                    None => break,
                    Some(Operator::In) => {
                        let rhs = self.prefixed_operand()?;
                        self.table_ref_shape(rhs, true)?;
                    }
                    Some(Operator::Other) => {
                        self.prefixed_operand()?;
                    }
                }
            }
            shape = Shape::Other;
        }
        Ok(shape)
    }

    /// Comma-separated expressions, each with an optional `AS alias` (function arguments,
    /// brackets, `USING`, `GROUP BY`, …). Returns the shapes.
    pub fn expr_list(&mut self, close: Kind) -> Result<Vec<Shape>, Rejection> {
        let mut shapes = Vec::new();
        if self.c.kind() == close {
            return Ok(shapes);
        }
        loop {
            shapes.push(self.expr()?);
            self.opt_alias(false)?;
            if !self.c.eat(Kind::Comma) {
                return Ok(shapes);
            }
        }
    }

    /// Consumes a binary operator, if one follows.
    fn operator(&mut self) -> Option<Operator> {
        let k = self.c.kind();
        if matches!(
            k,
            Kind::Plus
                | Kind::Minus
                | Kind::Star
                | Kind::Slash
                | Kind::Percent
                | Kind::Concat
                | Kind::Eq
                | Kind::NotEq
                | Kind::Lt
                | Kind::Le
                | Kind::Gt
                | Kind::Ge
                | Kind::Question
                | Kind::Colon
        ) {
            self.c.advance();
            return Some(Operator::Other);
        }
        for phrase in ["IN", "NOT IN", "GLOBAL IN", "GLOBAL NOT IN"] {
            if self.c.kw(phrase) {
                return Some(Operator::In);
            }
        }
        for phrase in
            ["AND", "OR", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE", "BETWEEN", "NOT BETWEEN", "DIV", "MOD", "REGEXP"]
        {
            if self.c.kw(phrase) {
                return Some(Operator::Other);
            }
        }
        None
    }

    /// An operand after any prefix operators (`NOT`, `-`, `+`).
    pub(super) fn prefixed_operand(&mut self) -> Result<Shape, Rejection> {
        let mut prefixed = false;
        loop {
            let not = self.c.is_kw("NOT") && self.c.kind_at(1) != Kind::LParen;
            if !(not || matches!(self.c.kind(), Kind::Minus | Kind::Plus)) {
                break;
            }
            self.c.advance();
            prefixed = true;
        }
        let shape = self.nested(Self::operand)?;
        Ok(if prefixed { Shape::Other } else { shape })
    }

    /// A primary with its postfix operators (`[i]`, `.1`, `::T`).
    pub(super) fn operand(&mut self) -> Result<Shape, Rejection> {
        let mut shape = self.primary()?;
        loop {
            match self.c.kind() {
                Kind::LBracket => {
                    self.c.advance();
                    self.expr()?;
                    self.c.expect(Kind::RBracket, "`]`")?;
                }
                Kind::Dot if self.c.kind_at(1) == Kind::Number => {
                    self.c.advance();
                    self.c.advance();
                }
                Kind::Dot
                    if matches!(shape, Shape::Other) && matches!(self.c.kind_at(1), Kind::Word | Kind::Quoted) =>
                {
                    // Element access by name on a tuple: `(x).name`, `f(x).name`.
                    self.c.advance();
                    self.c.advance();
                }
                Kind::DoubleColon => {
                    self.c.advance();
                    self.data_type()?;
                }
                _ => return Ok(shape),
            }
            shape = Shape::Other;
        }
    }

    pub(super) fn primary(&mut self) -> Result<Shape, Rejection> {
        match self.c.kind() {
            Kind::Number | Kind::Str => {
                self.c.advance();
                Ok(Shape::Other)
            }
            Kind::LParen => self.parenthesised(),
            Kind::LBracket => {
                self.c.advance();
                self.expr_list(Kind::RBracket)?;
                self.c.expect(Kind::RBracket, "`]`")?;
                Ok(Shape::Other)
            }
            Kind::Star => {
                self.c.advance();
                self.column_transformers()?;
                Ok(Shape::Other)
            }
            Kind::Word => self.word_primary(),
            Kind::Quoted => self.name_primary(),
            _ => Err(self.c.error("an expression")),
        }
    }

    /// `(subquery)`, `(expr)` (its shape is the inner one's) or a tuple `(a, b)`.
    pub(super) fn parenthesised(&mut self) -> Result<Shape, Rejection> {
        let saved = self.c.pos;
        if self.subquery_ahead() && !self.not_subquery.contains(&saved) {
            let (tables, functions) = (self.tables.len(), self.table_functions.len());
            match self.subquery() {
                Ok(()) => return Ok(Shape::Other),
                // A refusal of what is inside (a function, SETTINGS, …) stands.
                Err(e) if !matches!(e, Rejection::Unparseable(_)) => return Err(e),
                Err(_) => {
                    // As ClickHouse does: not a subquery, so a parenthesised expression.
                    // Remembered, so that nested parentheses are not tried again and again.
                    self.not_subquery.insert(saved);
                    self.c.pos = saved;
                    self.tables.truncate(tables);
                    self.table_functions.truncate(functions);
                }
            }
        }
        self.c.expect(Kind::LParen, "`(`")?;
        let shapes = self.expr_list(Kind::RParen)?;
        self.c.expect(Kind::RParen, "`)`")?;
        Ok(match shapes.as_slice() {
            [one] => *one,
            _ => Shape::Other,
        })
    }

    /// Whether `(` starts a subquery: `(SELECT`, `(WITH`, or `((…` around one.
    pub fn subquery_ahead(&mut self) -> bool {
        let mut n = 0;
        while self.c.kind_at(n) == Kind::LParen {
            n += 1;
        }
        n > 0 && (self.c.is_kw_at(n, "SELECT") || self.c.is_kw_at(n, "WITH"))
    }

    /// `( select )`.
    pub fn subquery(&mut self) -> Result<(), Rejection> {
        self.c.expect(Kind::LParen, "`(`")?;
        self.select_union()?;
        self.c.expect(Kind::RParen, "`)`")?;
        Ok(())
    }

    pub(super) fn word_primary(&mut self) -> Result<Shape, Rejection> {
        let word = self.c.word_upper().unwrap_or_default();
        let next = self.c.kind_at(1);
        match word.as_str() {
            "NULL" | "TRUE" | "FALSE" if next != Kind::LParen => {
                self.c.advance();
                return Ok(Shape::Other);
            }
            "CASE" => return self.case(),
            "INTERVAL" => return self.interval(),
            "DATE" | "TIMESTAMP" if next == Kind::Str => {
                self.c.advance();
                self.c.advance();
                return Ok(Shape::Other);
            }
            "EXISTS" | "ANY" | "ALL" | "SOME" if next == Kind::LParen && self.subquery_after(1) => {
                self.c.advance();
                self.subquery()?;
                return Ok(Shape::Other);
            }
            "CAST" if next == Kind::LParen => {
                self.c.mark_call(self.c.pos);
                return self.cast();
            }
            "COLUMNS" if next == Kind::LParen => {
                self.c.advance();
                self.c.advance();
                self.expr_list(Kind::RParen)?;
                self.c.expect(Kind::RParen, "`)`")?;
                self.column_transformers()?;
                return Ok(Shape::Other);
            }
            _ => {}
        }
        if self.is_non_operand() && next != Kind::LParen {
            return Err(self.c.error("an expression (quote a column named like a keyword)"));
        }
        self.name_primary()
    }

    /// A name: a column (`a`, `t.a`, `db.t.a`), `t.*`, or a function call.
    pub(super) fn name_primary(&mut self) -> Result<Shape, Rejection> {
        let first = self.c.pos;
        self.c.advance();
        let mut parts = 1;
        while self.c.kind() == Kind::Dot && matches!(self.c.kind_at(1), Kind::Word | Kind::Quoted) {
            self.c.advance();
            self.c.advance();
            parts += 1;
        }
        if self.c.kind() == Kind::Dot && self.c.kind_at(1) == Kind::Star {
            self.c.advance();
            self.c.advance();
            self.column_transformers()?;
            return Ok(Shape::Other);
        }
        if self.c.kind() == Kind::LParen {
            if parts > 1 {
                return Err(self.c.error("no call of a qualified name"));
            }
            self.call(first)?;
            return Ok(Shape::Other);
        }
        Ok(Shape::Ident { first, parts })
    }

    /// A function call whose name is the token at `name_index`; the cursor is at `(`.
    pub(super) fn call(&mut self, name_index: usize) -> Result<(), Rejection> {
        let token = self.c.token(name_index);
        let name = self.c.name_of(&token);
        let bare = token.kind == Kind::Word;
        self.c.mark_call(name_index);
        self.c.advance(); // (
        let upper = name.to_ascii_uppercase();
        if bare && self.special_call(&upper)? {
            return self.after_call(name, false);
        }
        let distinct = self.c.kw("DISTINCT");
        if !distinct {
            self.c.kw("ALL");
        }
        let mut args = if bare && matches!(upper.as_str(), "SUBSTRING" | "SUBSTR") && self.c.kind() != Kind::RParen {
            // `SUBSTRING(s FROM a [FOR b])`, decided after the first argument (read once).
            let first = self.expr()?;
            if self.c.kw("FROM") {
                self.expr()?;
                if self.c.kw("FOR") {
                    self.expr()?;
                }
                self.c.expect(Kind::RParen, "`)`")?;
                return self.after_call(name, false);
            }
            self.opt_alias(false)?;
            let mut args = vec![first];
            if self.c.eat(Kind::Comma) {
                args.extend(self.expr_list(Kind::RParen)?);
            }
            args
        } else {
            self.expr_list(Kind::RParen)?
        };
        self.c.expect(Kind::RParen, "`)`")?;
        if self.c.kind() == Kind::LParen {
            // Parametric aggregate: the first list was the parameters.
            self.c.advance();
            self.c.kw("DISTINCT");
            args = self.expr_list(Kind::RParen)?;
            self.c.expect(Kind::RParen, "`)`")?;
        }
        if let [Shape::Ident { first, parts: 1 }, _, ..] = args.as_slice()
            && higher_order(name)
        {
            // 26.x calls a function named here (`arrayMap(file, …)`), unless a column or
            // alias has the name: checked as a call. A column there needs qualifying.
            let function = self.c.name_of(&self.c.token(*first));
            if !function_allowed(function) {
                return Err(Rejection::Function(function.to_owned()));
            }
        }
        if in_family(name)
            && let Some(&second) = args.get(1)
        {
            // Only these four (in exactly this spelling) see CTEs in every ClickHouse version
            // (`checkFunctionIsInOrGlobalInOperator`); `nullIn(x, cte)` reads the table
            // `cte` where the old analyzer runs.
            let ctes = matches!(name, "in" | "notIn" | "globalIn" | "globalNotIn");
            self.table_ref_shape(second, ctes)?;
        }
        self.after_call(name, distinct)
    }

    /// Checks the called name and reads `RESPECT|IGNORE NULLS` and `OVER …`.
    pub(super) fn after_call(&mut self, name: &str, distinct: bool) -> Result<(), Rejection> {
        let resolved = if distinct { format!("{name}Distinct") } else { name.to_owned() };
        if !function_allowed(&resolved) {
            return Err(Rejection::Function(resolved));
        }
        self.c.kw_any(&["RESPECT NULLS", "IGNORE NULLS"]);
        if self.c.kw("OVER") {
            if self.c.kind() == Kind::LParen {
                self.window_spec()?;
            } else {
                self.c.ident("a window name")?;
            }
        }
        Ok(())
    }
}
