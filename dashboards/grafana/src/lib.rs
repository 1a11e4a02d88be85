//! gatelog's Grafana dashboards (`dashboards/grafana/*.json`, for the official ClickHouse data
//! source plugin `grafana-clickhouse-datasource`) as data, so tests can check them without a
//! Grafana: their structure, and every panel's SQL as the plugin would send it to ClickHouse.
//!
//! Module map:
//! - [`dashboard`]: a dashboard file read into its variables, panels and targets.
//! - [`lint`]: the structure checks ([`lint::check`]): the data source variable used by every
//!   panel and target, SQL targets with `rawSql` and `format`, unique ids and `refId`s, grid
//!   positions inside the 24 columns and not overlapping, declared variables and formats.
//! - [`interpolate`]: what happens to a target's `rawSql` between the dashboard and ClickHouse,
//!   in the plugin's order: `frontend` (the browser: `$__conditionalAll`, then Grafana's
//!   template variables with the plugin's default formatting), then `macros` (the plugin's
//!   backend: comment stripping and the `$__` macros), then a check that nothing is left over.
//!
//! Where the behaviour comes from (read, not copied): grafana/clickhouse-datasource at
//! 1d04063a31fb30f9582cd0b3aeaacb7d350b0dcf (v4.20.0): `pkg/macros/macros.go` (the macro
//! handlers and the comment style), `pkg/plugin/driver.go` (`interpolateMacros`),
//! `src/data/CHDatasource.ts` (`applyTemplateVariables`, `applyConditionalAll`,
//! `getMacroArgs`, `format`); grafana/macropro v1.0.1 as that plugin pins it (`parser.go`:
//! one forward scan, nested arguments expanded first; `macropro.go`: `StripComments`);
//! grafana/scenes `variables/interpolation` (`sceneInterpolator.ts`, `formatRegistry.ts`,
//! `constants.ts`'s `VARIABLE_REGEX`).

pub mod dashboard;
mod frontend;
pub mod interpolate;
pub mod lint;
mod macros;

pub use dashboard::{Dashboard, DashboardError, Panel, Target, Variable, load_dir};
pub use interpolate::{InterpolateError, QueryContext, Values, VarValue, interpolate};

use std::path::PathBuf;

/// The folder holding the dashboards: `dashboards/grafana` in the repository.
pub fn dashboards_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The data source plugin every panel must use.
pub const PLUGIN_TYPE: &str = "grafana-clickhouse-datasource";
