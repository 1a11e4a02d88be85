//! What a parsed statement touches: tables (including in subqueries, joins, CTEs and
//! `UNION`s, with CTE names scoped to their query), table functions, `FORMAT` clauses, and
//! functions that are never allowed.

use super::{DANGEROUS_TABLE_FUNCTIONS, DENIED_FUNCTIONS, Rejection, TableName, format_allowed, truncate};
use sqlparser::ast::{Expr, ObjectName, ObjectNamePart, Query, Statement, TableFactor, Visitor};
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// What `SHOW TABLES`/`SHOW DATABASES` list, as pseudo tables (`db.*`, `system.databases`),
/// so that policy can decide them. `None` for other statements.
pub(crate) fn show_targets(statement: &Statement, default_database: &str) -> Option<Vec<TableName>> {
    match statement {
        Statement::ShowTables { show_options, .. } => {
            let database = show_options
                .show_in
                .as_ref()
                .and_then(|i| i.parent_name.as_ref())
                .map(|n| n.to_string().trim_matches(['`', '"']).to_owned())
                .unwrap_or_else(|| default_database.to_owned());
            Some(vec![TableName { database, table: "*".into() }])
        }
        Statement::ShowDatabases { .. } => {
            Some(vec![TableName { database: "system".into(), table: "databases".into() }])
        }
        _ => None,
    }
}

/// Target tables the visitor does not report as relations.
pub(crate) fn explicit_targets(statement: &Statement) -> Result<Vec<ObjectName>, Rejection> {
    Ok(match statement {
        Statement::Drop { names, .. } => names.clone(),
        Statement::RenameTable(renames) => {
            renames.iter().flat_map(|r| [r.old_name.clone(), r.new_name.clone()]).collect()
        }
        Statement::CreateTable(c) => vec![c.name.clone()],
        Statement::CreateView(c) => vec![c.name.clone()],
        Statement::ShowCreate { obj_name, .. } => vec![obj_name.clone()],
        Statement::Insert(insert) => match &insert.table {
            sqlparser::ast::TableObject::TableName(_) => Vec::new(),
            sqlparser::ast::TableObject::TableFunction(f) => {
                let name = f.name.to_string().to_ascii_lowercase();
                return Err(if DANGEROUS_TABLE_FUNCTIONS.contains(&name.as_str()) {
                    Rejection::DangerousTableFunction(name)
                } else {
                    Rejection::UnsupportedTable(format!("INSERT INTO FUNCTION {name}"))
                });
            }
            other => return Err(Rejection::UnsupportedTable(truncate(&other.to_string()))),
        },
        _ => Vec::new(),
    })
}

/// Walks a statement, collecting what it touches.
pub(crate) struct Collector<'a> {
    default_database: &'a str,
    pub(crate) tables: Vec<TableName>,
    pub(crate) table_functions: Vec<String>,
    pub(crate) format: Option<String>,
    /// CTE names visible in each enclosing query.
    cte_scopes: Vec<BTreeSet<String>>,
    /// The next relation is a table function's name, not a table.
    skip_relation: bool,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(default_database: &'a str) -> Self {
        Collector {
            default_database,
            tables: Vec::new(),
            table_functions: Vec::new(),
            format: None,
            cte_scopes: Vec::new(),
            skip_relation: false,
        }
    }

    fn is_cte(&self, name: &str) -> bool {
        self.cte_scopes.iter().any(|s| s.contains(name))
    }
}

fn name_parts(name: &ObjectName) -> Result<Vec<String>, Rejection> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(id) => Ok(id.value.clone()),
            ObjectNamePart::Function(_) => Err(Rejection::UnsupportedTable(name.to_string())),
        })
        .collect()
}

/// Unqualified relation names anywhere inside a query (for the self-referencing CTE check).
fn unqualified_relations(query: &Query) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let _ = sqlparser::ast::visit_relations(query, |name| {
        if let [ObjectNamePart::Identifier(id)] = name.0.as_slice() {
            out.insert(id.value.clone());
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

impl Visitor for Collector<'_> {
    type Break = Rejection;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Rejection> {
        if query.settings.is_some() {
            return ControlFlow::Break(Rejection::Settings);
        }
        if let Some(format) = &query.format_clause {
            let name = match format {
                sqlparser::ast::FormatClause::Identifier(id) => id.value.clone(),
                sqlparser::ast::FormatClause::Null => "Null".to_owned(),
            };
            if !format_allowed(&name) {
                return ControlFlow::Break(Rejection::Format(name));
            }
            self.format = Some(name);
        }
        let mut scope = BTreeSet::new();
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                let name = cte.alias.name.value.clone();
                if unqualified_relations(&cte.query).contains(&name) {
                    return ControlFlow::Break(Rejection::AmbiguousCte(name));
                }
                scope.insert(name);
            }
        }
        self.cte_scopes.push(scope);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<Rejection> {
        self.cte_scopes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Rejection> {
        match factor {
            TableFactor::Table { name, args: Some(_), .. } => {
                let fname = name.to_string().to_ascii_lowercase();
                if DANGEROUS_TABLE_FUNCTIONS.contains(&fname.as_str()) {
                    return ControlFlow::Break(Rejection::DangerousTableFunction(fname));
                }
                if !self.table_functions.contains(&fname) {
                    self.table_functions.push(fname);
                }
                self.skip_relation = true;
            }
            TableFactor::Table { .. } | TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => {}
            TableFactor::TableFunction { expr, .. } => {
                return ControlFlow::Break(Rejection::UnsupportedTable(truncate(&expr.to_string())));
            }
            TableFactor::Function { name, .. } => {
                let fname = name.to_string().to_ascii_lowercase();
                if DANGEROUS_TABLE_FUNCTIONS.contains(&fname.as_str()) {
                    return ControlFlow::Break(Rejection::DangerousTableFunction(fname));
                }
                return ControlFlow::Break(Rejection::UnsupportedTable(fname));
            }
            other => return ControlFlow::Break(Rejection::UnsupportedTable(truncate(&other.to_string()))),
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Rejection> {
        if std::mem::take(&mut self.skip_relation) {
            return ControlFlow::Continue(());
        }
        let parts = match name_parts(relation) {
            Ok(p) => p,
            Err(e) => return ControlFlow::Break(e),
        };
        let table = match parts.as_slice() {
            [t] if self.is_cte(t) => return ControlFlow::Continue(()),
            [t] => TableName { database: self.default_database.to_owned(), table: t.clone() },
            [d, t] => TableName { database: d.clone(), table: t.clone() },
            _ => return ControlFlow::Break(Rejection::UnsupportedTable(relation.to_string())),
        };
        if !self.tables.contains(&table) {
            self.tables.push(table);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Rejection> {
        if let Expr::Function(f) = expr {
            let name = f.name.to_string().to_ascii_lowercase();
            let base = name.rsplit('.').next().unwrap_or(&name);
            if DENIED_FUNCTIONS.contains(&base)
                || base.starts_with("dictget")
                || DANGEROUS_TABLE_FUNCTIONS.contains(&base)
            {
                return ControlFlow::Break(Rejection::Function(name));
            }
        }
        ControlFlow::Continue(())
    }
}
