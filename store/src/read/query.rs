//! [`ReadQuery`]: a named query, its SQL with `{name}` placeholders, and typed [`Param`]s
//! bound client-side (18.16 has no server-side parameters) with the store's one escaping
//! (`sql::quote_into`). Binding checks that every placeholder has a parameter and every
//! parameter a placeholder, so a query can never be sent half bound.

use crate::StoreError;
use crate::sql::quote_into;
use gatelog_model::IpeParameter;
use std::fmt;
use std::fmt::Write as _;
use std::marker::PhantomData;

/// A parameter's value; each variant is bound as one ClickHouse type ([`Value::kind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `'text'` (escaped), a `String`.
    Str(String),
    /// `['a', 'b']`, an `Array(String)` (`emptyArrayString()` when empty).
    Strs(Vec<String>),
    /// `toInt64(n)`.
    Int64(i64),
    /// `toUInt64(n)`.
    UInt64(u64),
}

impl Value {
    /// The ClickHouse type the value is bound as.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "String",
            Value::Strs(_) => "Array(String)",
            Value::Int64(_) => "Int64",
            Value::UInt64(_) => "UInt64",
        }
    }

    /// Appends the value as SQL: a literal of exactly [`Value::kind`].
    fn write_sql(&self, out: &mut String) {
        match self {
            Value::Str(s) => quote_into(out, s),
            Value::Strs(items) if items.is_empty() => out.push_str("emptyArrayString()"),
            Value::Strs(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    quote_into(out, item);
                }
                out.push(']');
            }
            Value::Int64(n) => {
                let _ = write!(out, "toInt64({n})");
            }
            Value::UInt64(n) => {
                let _ = write!(out, "toUInt64({n})");
            }
        }
    }

    /// The value as the IPE record shows it: text as is (no quotes), numbers in decimal,
    /// arrays as their SQL literal.
    fn text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Int64(n) => n.to_string(),
            Value::UInt64(n) => n.to_string(),
            Value::Strs(_) => {
                let mut out = String::new();
                self.write_sql(&mut out);
                out
            }
        }
    }
}

/// A named parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: std::borrow::Cow<'static, str>,
    pub value: Value,
}

impl Param {
    pub fn new(name: impl Into<std::borrow::Cow<'static, str>>, value: Value) -> Self {
        Param { name: name.into(), value }
    }
}

/// A named read query with its parameters bound, returning rows of type `R`.
pub struct ReadQuery<R> {
    name: &'static str,
    table: String,
    template: String,
    params: Vec<Param>,
    sql: String,
    row: PhantomData<fn() -> R>,
}

impl<R> Clone for ReadQuery<R> {
    fn clone(&self) -> Self {
        ReadQuery {
            name: self.name,
            table: self.table.clone(),
            template: self.template.clone(),
            params: self.params.clone(),
            sql: self.sql.clone(),
            row: PhantomData,
        }
    }
}

impl<R> fmt::Debug for ReadQuery<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadQuery").field("name", &self.name).field("sql", &self.sql).finish_non_exhaustive()
    }
}

impl<R> ReadQuery<R> {
    /// Binds `params` into `template`. `table` names what the query reads, for errors.
    pub fn new(
        name: &'static str,
        table: impl Into<String>,
        template: impl Into<String>,
        params: Vec<Param>,
    ) -> Result<Self, StoreError> {
        let template = template.into();
        let sql = bind(name, &template, &params)?;
        Ok(ReadQuery { name, table: table.into(), template, params, sql, row: PhantomData })
    }

    /// The registered name (`read.…`), as `gatelog sql dump` lists it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The table the query is about (`<database>.decisions`), as errors name it.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The SQL with `{name}` placeholders.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The SQL exactly as sent: the template with every parameter bound.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The parameters as the IPE record lists them: sorted by name.
    pub fn ipe_parameters(&self) -> Vec<IpeParameter> {
        let mut out: Vec<IpeParameter> = self
            .params
            .iter()
            .map(|p| IpeParameter {
                name: p.name.clone().into_owned(),
                kind: p.value.kind().to_owned(),
                value: p.value.text(),
            })
            .collect();
        out.sort();
        out
    }
}

/// Fills each `{name}` of `template` with its parameter's literal.
fn bind(query: &'static str, template: &str, params: &[Param]) -> Result<String, StoreError> {
    let invalid = |detail: String| StoreError::InvalidQuery { name: query.to_owned(), detail };
    for (i, p) in params.iter().enumerate() {
        if params[..i].iter().any(|q| q.name == p.name) {
            return Err(invalid(format!("parameter {} is given twice", p.name)));
        }
    }
    let mut used = vec![false; params.len()];
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| invalid(format!("unclosed placeholder at {:?}", &rest[open..])))?;
        let name = &after[..close];
        let plain = !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !plain {
            return Err(invalid(format!("placeholder {{{name}}} is not a parameter name")));
        }
        let i = params
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| invalid(format!("no value for parameter {name}")))?;
        params[i].value.write_sql(&mut out);
        used[i] = true;
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(invalid("a '}' without its '{'".to_owned()));
    }
    out.push_str(rest);
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(invalid(format!("parameter {} is not used by the query", params[i].name)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(template: &str, params: Vec<Param>) -> Result<ReadQuery<()>, StoreError> {
        ReadQuery::new("read.test", "db.t", template, params)
    }

    #[test]
    fn binds_typed_literals_with_the_store_escaping() {
        let query = q(
            "SELECT * FROM t WHERE a = {who} AND t >= {from_ms} AND n < {n} AND has({sets}, s) AND has({none}, s) AND b = {who}",
            vec![
                Param::new("who", Value::Str("o'brien \\ ü\n".into())),
                Param::new("from_ms", Value::Int64(-5)),
                Param::new("n", Value::UInt64(u64::MAX)),
                Param::new("sets", Value::Strs(vec!["a".into(), "b'".into()])),
                Param::new("none", Value::Strs(vec![])),
            ],
        )
        .unwrap();
        assert_eq!(
            query.sql(),
            r"SELECT * FROM t WHERE a = 'o\'brien \\ ü\n' AND t >= toInt64(-5) AND n < toUInt64(18446744073709551615) AND has(['a', 'b\''], s) AND has(emptyArrayString(), s) AND b = 'o\'brien \\ ü\n'"
        );
        let names: Vec<_> = query.ipe_parameters().into_iter().map(|p| (p.name, p.kind, p.value)).collect();
        assert_eq!(
            names,
            vec![
                ("from_ms".into(), "Int64".into(), "-5".into()),
                ("n".into(), "UInt64".into(), "18446744073709551615".into()),
                ("none".into(), "Array(String)".into(), "emptyArrayString()".into()),
                ("sets".into(), "Array(String)".into(), r"['a', 'b\'']".into()),
                ("who".into(), "String".into(), "o'brien \\ ü\n".into()),
            ]
        );
    }

    #[test]
    fn a_value_that_looks_like_a_placeholder_stays_a_value() {
        let query =
            q("SELECT {a}, {b}", vec![Param::new("a", Value::Str("{b}".into())), Param::new("b", Value::Int64(1))])
                .unwrap();
        assert_eq!(query.sql(), "SELECT '{b}', toInt64(1)");
    }

    #[test]
    fn refuses_half_bound_queries() {
        let err = |r: Result<ReadQuery<()>, StoreError>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(q("SELECT {a}", vec![])).contains("no value for parameter a"));
        assert!(err(q("SELECT 1", vec![Param::new("a", Value::Int64(1))])).contains("a is not used"));
        assert!(err(q("SELECT {a", vec![])).contains("unclosed"));
        assert!(err(q("SELECT {A}", vec![])).contains("not a parameter name"));
        assert!(err(q("SELECT a}", vec![])).contains("without its"));
        let twice = vec![Param::new("a", Value::Int64(1)), Param::new("a", Value::Int64(2))];
        assert!(err(q("SELECT {a}", twice)).contains("given twice"));
        assert!(err(q("SELECT {a}", vec![])).contains("read.test"));
    }
}
