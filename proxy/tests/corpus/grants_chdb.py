"""Checks `gatelog proxy grants --server modern` in chdb (ClickHouse 26.9), which has no
writable access storage (no CREATE USER) and runs everything as one user: every statement
must parse (formatQuery), and each user's GRANT/REVOKE statements, given to chdb as that
user's <grants> in users.xml, must read back through SHOW GRANTS. Reads JSON from stdin
{"statements": [...], "users": {name: [grant or revoke without TO/FROM...]}}; prints one
JSON line per statement {"statement", "ok", "formatted"} and per user {"user", "grants"}."""
import json
import os
import sys
import tempfile
from xml.sax.saxutils import escape

import chdb


def main():
    job = json.load(sys.stdin)
    work = tempfile.mkdtemp(prefix="gatelog-grants-")
    users = "".join(
        f"<{name}><password></password><networks><ip>::/0</ip></networks><profile>default</profile>"
        f"<quota>default</quota><grants>{''.join(f'<query>{escape(q)}</query>' for q in queries)}</grants></{name}>"
        for name, queries in job["users"].items()
    )
    with open(os.path.join(work, "users.xml"), "w") as f:
        f.write(
            "<clickhouse><profiles><default/></profiles><users><default><password></password>"
            "<profile>default</profile><quota>default</quota><access_management>1</access_management>"
            f"</default>{users}</users><quotas><default/></quotas></clickhouse>"
        )
    with open(os.path.join(work, "config.xml"), "w") as f:
        f.write(
            "<clickhouse><user_directories replace=\"replace\"><users_xml><path>"
            + os.path.join(work, "users.xml")
            + "</path></users_xml></user_directories></clickhouse>"
        )
    conn = chdb.connect(":memory:?config-file=" + os.path.join(work, "config.xml"))
    cur = conn.cursor()
    for statement in job["statements"]:
        out = {"statement": statement, "ok": False, "formatted": None}
        try:
            literal = "'" + statement.replace("\\", "\\\\").replace("'", "\\'") + "'"
            cur.execute(f"SELECT formatQuery({literal})")
            out["formatted"] = cur.fetchall()[0][0]
            out["ok"] = True
        except Exception as e:  # noqa: BLE001 - reported to the test
            out["formatted"] = str(e).splitlines()[0][:300]
        print(json.dumps(out), flush=True)
    for name in job["users"]:
        cur.execute(f"SHOW GRANTS FOR `{name}`")
        print(json.dumps({"user": name, "grants": [row[0] for row in cur.fetchall()]}), flush=True)


if __name__ == "__main__":
    main()
