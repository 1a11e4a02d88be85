//! A target's `rawSql` to the SQL ClickHouse receives, in the plugin's order:
//!
//! 1. the browser (`CHDatasource.applyTemplateVariables`): `$__conditionalAll(condition, $var)`
//!    becomes `1=1` when `$var` is empty or All, else the condition; then Grafana replaces the
//!    template variables (`$var`, `${var}`, `${var:format}`, `[[var]]`), unformatted values
//!    through the plugin's own format (a single value as it is, several as `'a','b'`);
//! 2. the plugin's backend (`macros.Interpolate`): comments are blanked, then every `$__name`
//!    and `$__name(args)` the plugin knows is expanded;
//! 3. here only: anything still looking like a macro or a variable is an error, since
//!    ClickHouse would get it as text.
//!
//! The checker supports the formats and macros gatelog's dashboards use, and says so (an
//! error naming it) for the rest rather than guessing.

use crate::{frontend, macros};
use std::collections::BTreeMap;

/// A variable's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarValue {
    /// One value (a textbox, a constant, a single-value list).
    Text(String),
    /// Several values of a multi-value variable.
    Multi(Vec<String>),
    /// The variable's All option (`$__all`).
    All,
}

/// Variable values by name.
pub type Values = BTreeMap<String, VarValue>;

/// What the plugin's backend gets with a query: the dashboard's time range and the panel's
/// interval (Grafana's `intervalMs`: the range over the panel's width, rounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryContext {
    /// Unix milliseconds.
    pub from_ms: i64,
    pub to_ms: i64,
    pub interval_ms: i64,
}

/// Why a query cannot be expanded as the plugin would expand it (or would reach ClickHouse
/// with something unexpanded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    #[error(
        "$__conditionalAll at byte {at} does not have exactly two arguments (condition, $variable); the plugin then leaves the whole query unexpanded"
    )]
    ConditionalAllArgs { at: usize },
    #[error(
        "variable {name} is All outside $__conditionalAll: Grafana would put every option's value there; filter with $__conditionalAll(condition, ${name})"
    )]
    AllOutsideConditional { name: String },
    #[error("${{{name}:{format}}}: the format {format:?} is not one this checker reproduces")]
    UnsupportedFormat { name: String, format: String },
    #[error("{what} is not reproduced by this checker: {hint}")]
    Unsupported { what: String, hint: &'static str },
    #[error("macro {macro_name}: {detail}")]
    MacroArguments { macro_name: String, detail: String },
    #[error("{what} is left in the SQL ClickHouse would receive (unknown macro or variable)")]
    Unexpanded { what: String },
}

/// `raw_sql` as ClickHouse would receive it from the plugin, with `values` for the
/// dashboard's variables and `ctx` for the time range and interval.
pub fn interpolate(raw_sql: &str, values: &Values, ctx: &QueryContext) -> Result<String, InterpolateError> {
    let sql = frontend::apply_conditional_all(raw_sql, values)?;
    let sql = frontend::replace_variables(&sql, values, ctx)?;
    let sql = macros::expand(&sql, ctx)?;
    left_over(&sql)?;
    Ok(sql)
}

/// The first macro or variable reference left in `sql`, as an error.
fn left_over(sql: &str) -> Result<(), InterpolateError> {
    if let Some(at) = sql.find("$__") {
        let name: String = sql[at..].chars().skip(3).take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        return Err(InterpolateError::Unexpanded { what: format!("$__{name}") });
    }
    if let Some(r) = frontend::references(sql).into_iter().next() {
        return Err(InterpolateError::Unexpanded { what: sql[r.start..r.end].to_owned() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> QueryContext {
        // The plugin's own test instants: 2014-11-12T11:45:26.371Z … 2015-11-12T11:45:26.371Z.
        QueryContext { from_ms: 1_415_792_726_371, to_ms: 1_447_328_726_371, interval_ms: 300_000 }
    }

    fn values(pairs: &[(&str, VarValue)]) -> Values {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn the_whole_road_from_rawsql_to_clickhouse() {
        let raw = "SELECT count() FROM ${database}.decisions -- $__timeFilter(ignored)\n\
                   WHERE $__timeFilter(time) AND $__conditionalAll(tenant = decodeURLComponent('${tenant:percentencode}'), $tenant)\n\
                   GROUP BY intDiv(toUInt32(time), $__interval_s)";
        let v = values(&[("database", VarValue::Text("gatelog".into())), ("tenant", VarValue::Text("o'k\\".into()))]);
        let got = interpolate(raw, &v, &ctx()).unwrap();
        // The comment is blanked byte for byte (the plugin keeps positions for error messages).
        let expected = format!(
            "SELECT count() FROM gatelog.decisions {}\n\
             WHERE time >= toDateTime(1415792726) AND time <= toDateTime(1447328726) AND tenant = decodeURLComponent('o%27k%5C')\n\
             GROUP BY intDiv(toUInt32(time), 300)",
            " ".repeat("-- $__timeFilter(ignored)".len())
        );
        assert_eq!(got, expected);
        let all = values(&[("database", VarValue::Text("gatelog".into())), ("tenant", VarValue::All)]);
        assert!(interpolate(raw, &all, &ctx()).unwrap().contains("AND 1=1\n"));
    }

    #[test]
    fn what_would_reach_clickhouse_unexpanded_is_an_error() {
        let v = Values::new();
        assert_eq!(
            interpolate("SELECT $__unknownMacro(x)", &v, &ctx()),
            Err(InterpolateError::Unexpanded { what: "$__unknownMacro".into() })
        );
        assert_eq!(
            interpolate("SELECT * FROM ${undeclared}.t", &v, &ctx()),
            Err(InterpolateError::Unexpanded { what: "${undeclared}".into() })
        );
        assert!(matches!(
            interpolate("SELECT $__dateFilter(d)", &v, &ctx()),
            Err(InterpolateError::Unsupported { .. })
        ));
        let all = values(&[("tenant", VarValue::All)]);
        assert!(matches!(
            interpolate("SELECT * FROM t WHERE tenant = '${tenant}'", &all, &ctx()),
            Err(InterpolateError::AllOutsideConditional { .. })
        ));
    }
}
