#!/usr/bin/env python3
"""Load tables exported from ClickHouse 18.16 into chdb (ClickHouse 26.9 in-process) under one
schema profile, then run queries and print their results.

Usage: python3 run_panels_chdb.py < job.json > results.json

job.json:
  {"database": "...",
   "schema": ["CREATE DATABASE ...", "CREATE TABLE ...", ...],        # gatelog's DDL for the profile
   "tables": [{"table": "decisions", "file": "/abs/decisions.tsv",    # TabSeparated from 18.16
               "columns": [["event_id", "String"], ...], "rows": 123}],
   "queries": [{"id": "...", "sql": "..."}]}

Each table's rows go in with one INSERT, merges stopped and optimize_on_insert off, so copies
of one key stay separate rows as on a server that has not merged them yet. A column the
profile stores as DateTime64(3) is filled from the exported `<column>_ms` when there is one
(18.16's DateTime has no milliseconds), else cast. Results are JSONCompact objects (meta,
data) by query id, or {"error": "..."}; the session's time zone is UTC.
Exits 1 when the schema or the data cannot be loaded. Needs `pip install chdb-core`.
"""

import json
import sys


def main():
    try:
        from chdb import session
    except ImportError as e:
        print(f"chdb is not importable ({e}); install it with: pip install chdb-core", file=sys.stderr)
        return 2

    job = json.load(sys.stdin)
    db = job["database"]
    sess = session.Session()
    version = str(sess.query("SELECT version()", "CSV")).strip().strip('"')
    sess.query("SET session_timezone = 'UTC'")
    sess.query("SET optimize_on_insert = 0")
    for sql in job["schema"]:
        try:
            sess.query(sql)
        except Exception as e:
            print(f"schema statement failed on chdb {version}: {e}\n{sql}", file=sys.stderr)
            return 1

    loaded = {}
    for t in job["tables"]:
        table, exported = t["table"], dict(t["columns"])
        sess.query(f"SYSTEM STOP MERGES {db}.{table}")
        # JSON, not TabSeparated: TSV output escapes the quotes in `DateTime('UTC')`.
        target = json.loads(
            str(
                sess.query(
                    f"SELECT name, type FROM system.columns WHERE database = '{db}' AND table = '{table}' "
                    f"AND default_kind NOT IN ('ALIAS', 'MATERIALIZED') ORDER BY position",
                    "JSONCompact",
                )
            )
        )["data"]
        names, exprs = [], []
        for name, typ in target:
            if name not in exported:
                continue
            names.append(name)
            if typ.startswith("DateTime64") and f"{name}_ms" in exported:
                exprs.append(f"fromUnixTimestamp64Milli({name}_ms, 'UTC')")
            elif typ == exported[name]:
                exprs.append(name)
            else:
                exprs.append(f"CAST({name} AS {typ})")
        structure = ", ".join(f"{n} {ty}" for n, ty in t["columns"]).replace("\\", "\\\\").replace("'", "\\'")
        try:
            sess.query(
                f"INSERT INTO {db}.{table} ({', '.join(names)}) "
                f"SELECT {', '.join(exprs)} FROM file('{t['file']}', 'TabSeparated', '{structure}')"
            )
            count = int(str(sess.query(f"SELECT count() FROM {db}.{table}", "CSV")).strip())
        except Exception as e:
            print(f"loading {table} failed on chdb {version}: {e}", file=sys.stderr)
            return 1
        if count != t["rows"]:
            print(f"{table}: {count} rows in chdb, {t['rows']} exported", file=sys.stderr)
            return 1
        loaded[table] = count

    results = {}
    for q in job["queries"]:
        try:
            out = json.loads(str(sess.query(q["sql"], "JSONCompact")))
            results[q["id"]] = {"meta": out["meta"], "data": out["data"]}
        except Exception as e:
            results[q["id"]] = {"error": str(e)}
    json.dump({"version": version, "rows": loaded, "results": results}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
