//! The guard's list of higher-order functions (`guard::names::HIGHER_ORDER`) against ClickHouse
//! 26.9 (chdb): 26.x calls a bare function name given first to one of them, so a function
//! missing from the list is a call the guard would not check. The script finds them by
//! behaviour (a call with a lambda first runs); the list must be exactly that set.

#![allow(clippy::unwrap_used)]

#[path = "support/chdb.rs"]
mod chdb;
#[path = "support/guard_env.rs"]
mod guard_env;

use std::collections::BTreeSet;

use gatelog_proxy::guard::names::HIGHER_ORDER;

#[test]
fn the_higher_order_list_is_what_clickhouse_26_calls() {
    let Some(python) = chdb::python() else { return };
    let script = guard_env::corpus_dir().join("higher_order_chdb.py");
    let lines = chdb::run(&python, &script, &serde_json::json!({}));
    let found: BTreeSet<String> = lines
        .first()
        .and_then(|v| v.as_array())
        .expect("the script prints one JSON list")
        .iter()
        .map(|n| n.as_str().unwrap().to_ascii_lowercase())
        .collect();
    assert!(found.len() >= 20, "too few higher-order functions found, is the probe broken? {found:?}");
    let listed: BTreeSet<String> = HIGHER_ORDER.iter().map(|n| (*n).to_owned()).collect();
    let missing: Vec<_> = found.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&found).collect();
    assert!(missing.is_empty(), "higher-order in 26.9 but not in HIGHER_ORDER: {missing:?}");
    assert!(extra.is_empty(), "in HIGHER_ORDER but not higher-order in 26.9: {extra:?}");
}
