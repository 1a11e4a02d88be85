"""Finds ClickHouse 26.9's higher-order functions by behaviour: a function is higher-order when
one of the call shapes below, with a lambda first, runs. Prints one JSON list of the names (and
of the aliases of those names)."""
import json

from chdb import session

# A lambda first, then the arguments each family takes: arrays, array pairs, folds with an
# accumulator, maps, and a limit before the array or map (the partial sorts).
SHAPES = [
    "(x -> x, ['a'])",
    "(x -> 1, ['a'])",
    "(x -> x, ['a'], ['b'])",
    "(x, y -> 1, ['a'], ['b'])",
    "(x, acc -> acc, ['a'], '')",
    "(x -> x, 1, ['a'])",
    "(x -> 1, [1], 1)",
    "((k, v) -> 1, map('a', 'b'))",
    "((k, v) -> (k, v), map('a', 'b'))",
    "((k, v) -> 1, 1, map('a', 'b'))",
]


def main():
    s = session.Session()
    rows = str(s.query("SELECT name, alias_to FROM system.functions ORDER BY name", "TSV")).splitlines()
    pairs = [row.split("\t") + [""] for row in rows]
    found = set()
    for name, alias_to, *_ in pairs:
        if alias_to or not name.replace("_", "").isalnum():
            continue
        for shape in SHAPES:
            try:
                s.query(f"SELECT `{name}`{shape}", "TSV")
                found.add(name)
                break
            except Exception:  # noqa: BLE001 - a shape that does not fit
                pass
    aliases = {name for name, alias_to, *_ in pairs if alias_to in found}
    print(json.dumps(sorted(found | aliases)))


if __name__ == "__main__":
    main()
