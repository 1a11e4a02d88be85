//! The names the guard decides on by name: functions, table functions, formats and the IN
//! family.
//!
//! Functions are an allow-list: `functions.txt` is every function of ClickHouse 18.16 and of
//! ClickHouse 26.9 (their `system.functions`), lower-cased, minus those that read a table, a
//! dictionary, a file, a model, a setting or another server ([`denied_function`]);
//! `aggregates.txt` are the aggregate ones, which may carry combinators (`sumIf`,
//! `uniqMerge`, `count(DISTINCT …)` = `countDistinct`). A deny-list cannot keep up: every
//! release adds functions (`dictGetAll`, `aiGenerate`, …), and a name it does not know must
//! not run. `tests/guard_functions.rs` checks both lists against both servers. Names are
//! compared in lower case: ClickHouse resolves some functions in any case, so every spelling
//! of a denied name is denied.

use std::collections::BTreeSet;
use std::sync::LazyLock;

static FUNCTIONS: LazyLock<BTreeSet<&'static str>> =
    LazyLock::new(|| include_str!("functions.txt").lines().filter(|l| !l.is_empty()).collect());
static AGGREGATES: LazyLock<BTreeSet<&'static str>> =
    LazyLock::new(|| include_str!("aggregates.txt").lines().filter(|l| !l.is_empty()).collect());

/// Name prefixes (lower case) of functions that are never allowed: dictionaries (`dictGet*`,
/// `dictHas`, `dictIsIn`, …), the embedded region dictionaries, internal functions
/// (`__getScalar`), models, and functions that call AI providers.
pub const DENIED_FUNCTION_PREFIXES: &[&str] = &["dict", "region", "__", "naivebayes", "ai"];

/// Functions (lower case) that are never allowed, and why.
pub const DENIED_FUNCTIONS: &[&str] = &[
    // read tables
    "joinget",
    "joingetornull",
    "hascolumnintable",
    "getmaxtablenamelengthfordatabase",
    // read files, models, the server's binary or disks
    "file",
    "modelevaluate",
    "catboostevaluate",
    "filesystemavailable",
    "filesystemcapacity",
    "filesystemunreserved",
    "addresstoline",
    "addresstolinewithinlines",
    "addresstosymbol",
    "demangle",
    "showcertificate",
    "getoskernelversion",
    // read settings, macros, profiles, request headers
    "getsetting",
    "getsettingordefault",
    "getserversetting",
    "getmergetreesetting",
    "globalvariable",
    "getmacro",
    "currentprofiles",
    "enabledprofiles",
    "defaultprofiles",
    "getserverport",
    "getclienthttpheader",
    // write to the server log or to Keeper
    "logtrace",
    "generateserialid",
    // the embedded search-engine and OS dictionaries
    "sehierarchy",
    "sein",
    "setoroot",
    "oshierarchy",
    "osin",
    "ostoroot",
];

/// Aggregate function combinators (lower case), 18.16's and 26.9's.
const COMBINATORS: &[&str] = &[
    "if",
    "array",
    "map",
    "state",
    "merge",
    "mergestate",
    "foreach",
    "distinct",
    "ordefault",
    "ornull",
    "resample",
    "simplestate",
    "argmin",
    "argmax",
    "tuple",
    "null",
];

/// Table functions that read nothing but their arguments (lower case). `view(SELECT …)` is
/// checked like any subquery. Every other one (`url`, `file`, `remote`, `cluster`, `merge`,
/// `s3`, `mysql`, `dictionary`, `input`, `loop`, `shardByHash`, `catBoostPool`, …) is refused.
pub const SAFE_TABLE_FUNCTIONS: &[&str] = &[
    "numbers",
    "numbers_mt",
    "zeros",
    "zeros_mt",
    "generaterandom",
    "generateseries",
    "generate_series",
    "values",
    "null",
    "primes",
    "view",
];

/// Output and input formats a client may name (`FORMAT x`, `default_format=x`), by prefix.
/// Formats that need server-side schema or template files are left out.
const ALLOWED_FORMAT_PREFIXES: &[&str] = &[
    "tabseparated",
    "tsv",
    "csv",
    "json",
    "pretty",
    "values",
    "vertical",
    "native",
    "rowbinary",
    "null",
    "xml",
    "markdown",
    "parquet",
    "arrow",
    "orc",
    "avro",
    "tskv",
    "lineasstring",
    "rawblob",
];

/// Formats that match a prefix above but reach outside: AvroConfluent reads its schemas
/// from a registry server.
const DENIED_FORMATS: &[&str] = &["avroconfluent"];

/// Whether a lower-case function name is on the deny rules.
pub fn denied_function(lower: &str) -> bool {
    DENIED_FUNCTION_PREFIXES.iter().any(|p| lower.starts_with(p)) || DENIED_FUNCTIONS.contains(&lower)
}

/// Whether a function may be called, by its resolved name (any case, combinators included).
pub fn function_allowed(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if denied_function(&lower) {
        return false;
    }
    FUNCTIONS.contains(lower.as_str()) || aggregate_with_combinators(&lower, 4)
}

/// `name` is an allowed aggregate function followed by up to `depth` combinators.
fn aggregate_with_combinators(name: &str, depth: usize) -> bool {
    if depth == 0 {
        return false;
    }
    COMBINATORS.iter().any(|c| {
        name.len() > c.len() && name.ends_with(c) && name.is_char_boundary(name.len() - c.len()) && {
            let base = &name[..name.len() - c.len()];
            !denied_function(base) && (AGGREGATES.contains(base) || aggregate_with_combinators(base, depth - 1))
        }
    })
}

/// Higher-order functions (lower case) of the allow-list: ClickHouse 26.x reads a bare function
/// name as their first argument as a lambda that calls it (`arrayMap(upper, arr)` =
/// `arrayMap(x -> upper(x), arr)`), so that name is a call the guard must check too
/// (`arrayMap(file, ['/etc/passwd'])` reads a file). `tests/guard_functions.rs` finds them in
/// 26.9 by that behaviour and checks this list against it.
pub const HIGHER_ORDER: &[&str] = &[
    "arrayall",
    "arrayavg",
    "arraybottomk",
    "arraycompact",
    "arraycount",
    "arraycumsum",
    "arraycumsumnonnegative",
    "arraydifference",
    "arrayexists",
    "arrayfill",
    "arrayfilter",
    "arrayfirst",
    "arrayfirstindex",
    "arrayfirstornull",
    "arrayfold",
    "arraylast",
    "arraylastindex",
    "arraylastornull",
    "arraymap",
    "arraymax",
    "arraymin",
    "arraypartialreversesort",
    "arraypartialsort",
    "arrayproduct",
    "arrayreversefill",
    "arrayreversesort",
    "arrayreversesplit",
    "arraysort",
    "arraysplit",
    "arraysum",
    "arraytopk",
    "mapall",
    "mapapply",
    "mapexists",
    "mapfilter",
    "mappartialreversesort",
    "mappartialsort",
    "mapreversesort",
    "mapsort",
];

/// Whether a function (any case) takes a function, by name or as a lambda, first.
pub fn higher_order(name: &str) -> bool {
    HIGHER_ORDER.contains(&name.to_ascii_lowercase().as_str())
}

/// Whether a function (any case) is one of the IN family (`in`, `notIn`, `globalIn`,
/// `nullIn`, `globalNotNullInIgnoreSet`, …): with a name as second argument ClickHouse
/// reads that table.
pub fn in_family(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let base = lower.strip_suffix("ignoreset").unwrap_or(&lower);
    let base = base.strip_prefix("global").unwrap_or(base);
    matches!(base, "in" | "notin" | "nullin" | "notnullin")
}

pub fn table_function_safe(lower: &str) -> bool {
    SAFE_TABLE_FUNCTIONS.contains(&lower)
}

/// Whether a format name is one clients may ask for.
pub fn format_allowed(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !DENIED_FORMATS.contains(&lower.as_str()) && ALLOWED_FORMAT_PREFIXES.iter().any(|p| lower.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_are_an_allow_list_in_any_case() {
        for ok in ["count", "COUNT", "toDate", "sumIf", "uniqExactMerge", "countDistinct", "quantilesIfState", "in"] {
            assert!(function_allowed(ok), "{ok}");
        }
        for no in [
            "dictGetUInt64",
            "DICTGET",
            "dictHas",
            "dictIsIn",
            "dictGetHierarchy",
            "joinGet",
            "hasColumnInTable",
            "getSetting",
            "file",
            "regionToName",
            "__getScalar",
            "aiGenerate",
            "noSuchFunction",
            "joinGetIf",
            "dictGetIf",
            "fileArray",
            "ünï",
        ] {
            assert!(!function_allowed(no), "{no}");
        }
        assert!(FUNCTIONS.iter().all(|f| !denied_function(f)), "a denied name is on the list");
    }

    #[test]
    fn the_in_family() {
        for f in
            ["in", "notIn", "GLOBALIN", "globalNotIn", "nullIn", "notNullIn", "globalNotNullInIgnoreSet", "inIgnoreSet"]
        {
            assert!(in_family(f), "{f}");
        }
        for f in ["min", "position", "has", "like", "globalVariable"] {
            assert!(!in_family(f), "{f}");
        }
    }

    #[test]
    fn formats() {
        assert!(format_allowed("JSONEachRow") && format_allowed("TSVWithNames") && format_allowed("Values"));
        assert!(!format_allowed("Template") && !format_allowed("CapnProto") && !format_allowed("AvroConfluent"));
    }
}
