#!/usr/bin/env python3
"""Run every statement of a `gatelog sql dump` in chdb (ClickHouse in-process) in a fresh session.

Usage:
    gatelog sql dump --profile modern | python3 tests/compat/run_chdb.py -
    python3 tests/compat/run_chdb.py [--parse-only] [--rowbinary DIR] DUMP_FILE
    python3 tests/compat/run_chdb.py --interactive

The dump is statements separated by ";\n\n", each preceded by a "-- name" comment line.
Each statement runs in order in one fresh session (later ones need the tables of earlier ones).
--parse-only  checks each statement with EXPLAIN AST instead of running it (for cluster dumps:
              chdb has no clusters and no ZooKeeper, so ON CLUSTER / Replicated* cannot run).
--rowbinary   DIR holds manifest.json and RowBinary files the store encoded; each is inserted
              with the column list the store sends, and its check query must give the expected text.
--describe    PREFIX: after running them, DESCRIBE each statement whose name starts with PREFIX
              (the read queries: their result columns) and print `DESCRIBE<TAB>name<TAB>[[col, type], ...]`.
--interactive answers one JSON request per line of standard input with one JSON line, for a
              test that decides its next statement from what the last one did (the store's
              migration runner, driven against 26.9):
                {"open": DIR}     (re)open a session whose data lives in DIR: reopening the
                                  same DIR is a restart on an existing data dir
                {"sql": SQL}      run SQL, answering {"ok": true, "out": CSV} or
                                  {"ok": false, "error": TEXT}

Exits 1 on the first failure, naming the statement and chdb's error. Needs `pip install chdb-core`.
"""

import argparse
import json
import os
import sys
import time


def parse_dump(text):
    statements = []
    for chunk in text.strip().rstrip(";").split(";\n\n"):
        chunk = chunk.strip()
        if not chunk:
            continue
        lines = chunk.splitlines()
        if not lines[0].startswith("-- "):
            raise SystemExit(f"malformed dump: statement without a '-- name' line:\n{chunk[:300]}")
        name = lines[0][3:].strip()
        sql = "\n".join(line for line in lines if not line.startswith("--")).strip()
        statements.append((name, sql))
    return statements


def interactive(session):
    sess = None
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            if "open" in request:
                if sess is not None:
                    sess.close()
                sess = session.Session(request["open"])
                out = str(sess.query("SELECT version()", "CSV")).strip().strip('"')
            elif sess is None:
                raise RuntimeError("no session: send {\"open\": DIR} first")
            else:
                out = str(sess.query(request["sql"], "CSV"))
            answer = {"ok": True, "out": out}
        except Exception as e:  # chdb raises a plain RuntimeError-like exception
            answer = {"ok": False, "error": str(e)}
        print(json.dumps(answer), flush=True)
    if sess is not None:
        sess.close()
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dump", nargs="?", help="dump file, or - for standard input")
    parser.add_argument("--parse-only", action="store_true")
    parser.add_argument("--rowbinary", metavar="DIR")
    parser.add_argument("--describe", metavar="PREFIX")
    parser.add_argument("--interactive", action="store_true")
    args = parser.parse_args()

    try:
        import chdb
        from chdb import session
    except ImportError as e:
        print(f"chdb is not importable ({e}); install it with: pip install chdb-core", file=sys.stderr)
        return 2
    if args.interactive:
        return interactive(session)
    if args.dump is None:
        parser.error("a dump file (or -) is needed unless --interactive")

    text = sys.stdin.read() if args.dump == "-" else open(args.dump, encoding="utf-8").read()
    statements = parse_dump(text)
    if not statements:
        print("the dump holds no statements", file=sys.stderr)
        return 1

    sess = session.Session()
    version = str(sess.query("SELECT version()", "CSV")).strip().strip('"')
    for name, sql in statements:
        query = f"EXPLAIN AST {sql}" if args.parse_only else sql
        try:
            sess.query(query, "CSV")
        except Exception as e:  # chdb raises a plain RuntimeError-like exception
            print(f"FAILED {name} on chdb {version}: {e}\n--- statement ---\n{sql}", file=sys.stderr)
            return 1

    checked = 0
    if args.rowbinary and not args.parse_only:
        # Let the dump's ALTER … DELETE mutations finish before inserting more rows.
        for _ in range(300):
            if str(sess.query("SELECT count() FROM system.mutations WHERE is_done = 0", "CSV")).strip() == "0":
                break
            time.sleep(0.1)
        manifest = json.load(open(os.path.join(args.rowbinary, "manifest.json"), encoding="utf-8"))
        for item in manifest:
            name = f"rowbinary.{item['table']}"
            db, table, columns = item["database"], item["table"], item["columns"]
            try:
                types = dict(
                    line.split("\t", 1)
                    for line in str(
                        sess.query(
                            f"SELECT name, type FROM system.columns WHERE database = '{db}' AND table = '{table}'",
                            "TabSeparated",
                        )
                    ).splitlines()
                    if line
                )
                structure = ", ".join(f"{c} {types[c]}" for c in columns)
                path = os.path.abspath(os.path.join(args.rowbinary, item["file"]))
                sess.query(
                    f"INSERT INTO {db}.{table} ({', '.join(columns)}) "
                    f"SELECT * FROM file('{path}', 'RowBinary', '{structure}')"
                )
                got = str(sess.query(item["check"], "CSV")).strip()
            except Exception as e:
                print(f"FAILED {name} on chdb {version}: {e}", file=sys.stderr)
                return 1
            if got != item["expect"]:
                rows = str(sess.query(f"SELECT count() FROM {db}.{table}", "CSV")).strip()
                mutations = str(sess.query("SELECT table, command, is_done FROM system.mutations", "CSV")).strip()
                print(
                    f"FAILED {name} on chdb {version}: check gave\n{got}\nexpected\n{item['expect']}\n"
                    f"({rows} rows in {db}.{table}; mutations:\n{mutations})",
                    file=sys.stderr,
                )
                return 1
            checked += 1

    if args.describe and not args.parse_only:
        for name, sql in statements:
            if not name.startswith(args.describe):
                continue
            try:
                out = str(sess.query(f"DESCRIBE TABLE ({sql})", "TabSeparated"))
            except Exception as e:
                print(f"FAILED describing {name} on chdb {version}: {e}", file=sys.stderr)
                return 1
            columns = [line.split("\t")[:2] for line in out.splitlines() if line]
            print(f"DESCRIBE\t{name}\t{json.dumps(columns)}")

    mode = "parsed" if args.parse_only else "executed"
    print(f"chdb {version}: {len(statements)} statements {mode}, {checked} RowBinary payloads checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
