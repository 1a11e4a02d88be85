"""Runs the guard corpus in chdb (ClickHouse 26.9): reads JSON from stdin
{"schema": [sql...], "cases": [{"name", "original", "rendered", "compare"}...]} and prints one
JSON line per case: {"name", "ok", "same", "error"}. A case is ok when the rendered SQL runs;
when `compare` is set, the original must run too and give the same answer."""
import json
import re
import sys

from chdb import session


def normalise(text):
    # Timings differ between two runs of the same query.
    return re.sub(r'"(elapsed|rows_read|bytes_read)":\s*[0-9.e-]+', "", text)


def main():
    job = json.load(sys.stdin)
    s = session.Session()
    for sql in job["schema"]:
        s.query(sql, "TSV")
    s.query("USE analytics", "TSV")
    for case in job["cases"]:
        out = {"name": case["name"], "ok": False, "same": None, "error": None}
        try:
            rendered = str(s.query(case["rendered"], "TSV"))
            out["ok"] = True
            if case["compare"]:
                original = str(s.query(case["original"], "TSV"))
                a, b = normalise(original), normalise(rendered)
                if "ORDER BY" not in case["original"].upper():
                    # Without ORDER BY the rows' order is the server's choice (UNION ALL
                    # branches run in parallel): compare the rows, not their order.
                    a, b = sorted(a.splitlines()), sorted(b.splitlines())
                out["same"] = a == b
                if not out["same"]:
                    out["error"] = f"original gave {original[:300]!r}, rendered gave {rendered[:300]!r}"
        except Exception as e:  # noqa: BLE001 - reported to the test
            out["error"] = str(e).splitlines()[0][:400] if str(e) else repr(e)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
