"""Runs what the guard allowed in chdb (ClickHouse 26.9) with the denied tables replaced by
views that fail when read, so that reading one at all (count(), IN, EXISTS) shows, and a file
`trap.txt` in the server's user files (its working directory, a fresh temporary one) that no
query may read. Reads JSON from stdin {"schema": [sql...], "queries": [{"name", "sql"}...]};
prints one JSON line per query {"name", "ok", "leak", "detail"} and a last one for the final
check."""
import json
import os
import shutil
import sys
import tempfile

MARKERS = ["987654321987", "98765432123", "VAULT-7f3a9c", "FILE-TRAP-4b2e"]
TRAPS = [
    "DROP TABLE analytics.salaries",
    "CREATE VIEW analytics.salaries AS SELECT toUInt64(number) AS user_id, toUInt64(987654321987) AS amount "
    "FROM numbers(2) WHERE throwIf(number = 0, 'LEAK-analytics.salaries') = 0",
    "DROP TABLE secret.vault",
    "CREATE VIEW secret.vault AS SELECT toUInt64(number) AS user_id, toUInt64(98765432123) AS amount, "
    "'VAULT-7f3a9c' AS note FROM numbers(2) WHERE throwIf(number = 0, 'LEAK-secret.vault') = 0",
]


def main():
    job = json.load(sys.stdin)
    home = tempfile.mkdtemp(prefix="gatelog-fuzz-")
    try:
        os.chdir(home)
        with open("trap.txt", "w") as f:
            f.write("FILE-TRAP-4b2e\n")
        run(job)
    finally:
        os.chdir("/")
        shutil.rmtree(home, ignore_errors=True)


def run(job):
    from chdb import session

    s = session.Session()
    for sql in job["schema"] + TRAPS:
        s.query(sql, "TSV")
    s.query("USE analytics", "TSV")
    for q in job["queries"]:
        out = {"name": q["name"], "ok": False, "leak": False, "detail": None}
        try:
            text = str(s.query(q["sql"], "TSV"))
            out["ok"] = True
            hit = [m for m in MARKERS if m in text]
            if hit:
                out["leak"] = True
                out["detail"] = f"the answer holds {hit}"
        except Exception as e:  # noqa: BLE001 - reported to the test
            message = str(e)
            if "LEAK-" in message or "storage View" in message or any(m in message for m in MARKERS):
                out["leak"] = True
                out["detail"] = message.splitlines()[0][:300]
        print(json.dumps(out), flush=True)
    tables = str(s.query("SELECT count() FROM system.tables WHERE (database, name) IN (('analytics', 'salaries'), ('secret', 'vault')) AND engine = 'View'", "TSV")).strip()
    print(json.dumps({"name": "final", "ok": tables == "2", "leak": tables != "2", "detail": f"{tables} traps left"}), flush=True)


if __name__ == "__main__":
    main()
