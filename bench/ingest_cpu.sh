#!/usr/bin/env bash
# gatelog's own CPU per record during `gatelog ingest` (user + system of the gatelog process,
# sinks included), and the kernel's share of it, for one or more binaries run alternately.
#
#   bench/ingest_cpu.sh [RECORDS] [RUNS] [BIN...]   (defaults: 200000, 3, ./target/release/gatelog)
#
# Uses the gzip file bench/ingest_vs_clickhouse.sh generates (bench/data/http_requests_N.ndjson.gz;
# run that once first), one managed ClickHouse for every run, a fresh database and data dir
# per run. A BIN may be `NAME=VALUE,...@path` to run it with those environment variables
# (e.g. `MIMALLOC_ALLOW_THP=0@./target/release/gatelog`). With PERF=1 each run is also
# recorded with `perf record -g` into bench/data/perf-<run>-<bin>.data. GATELOG_BENCH_CONFIG: a
# gatelog.toml for every run (e.g. `[index]\nenabled = false` to leave the tantivy sink out).
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-200000}"
runs="${2:-3}"
shift 2 || true
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(./target/release/gatelog)
data=bench/data
file="$data/http_requests_${records}.ndjson.gz"
[ -s "$file" ] || { echo "no $file: run bench/ingest_vs_clickhouse.sh $records first" >&2; exit 1; }

first_bin="${bins[0]##*@}"
rm -rf "$data/cpu-clickhouse"
url_file="$data/cpu-clickhouse.url"
rm -f "$url_file"
"$first_bin" clickhouse run --data-dir "$data/cpu-clickhouse" --url-file "$url_file" >"$data/cpu-clickhouse.out" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do [ -s "$url_file" ] && break; sleep 0.5; done
[ -s "$url_file" ] || { echo "managed ClickHouse did not start" >&2; cat "$data/cpu-clickhouse.out" >&2; exit 1; }
url=$(cat "$url_file")

for run in $(seq 1 "$runs"); do
  for i in "${!bins[@]}"; do
    spec="${bins[$i]}"
    bin="${spec##*@}"
    envs=()
    [ "$spec" != "$bin" ] && IFS=, read -r -a envs <<<"${spec%@*}"
    db="cpu_${run}_${i}"
    rm -rf "$data/cpu-gatelog"
    perf=()
    [ -n "${PERF:-}" ] && perf=(perf record -q -g -o "$data/perf-$run-$i.data" --)
    start=$(date +%s.%N)
    env "${envs[@]}" "${perf[@]}" /usr/bin/time -f '%U %S %M' -o "$data/cpu.time" "$bin" ingest ${GATELOG_BENCH_CONFIG:+--config "$GATELOG_BENCH_CONFIG"} --no-progress \
      --data-dir "$data/cpu-gatelog" --clickhouse-url "$url" --clickhouse-database "$db" \
      --dataset http_requests "$file" >"$data/cpu-gatelog.out" 2>&1
    end=$(date +%s.%N)
    read -r user sys rss <"$data/cpu.time"
    rows=$(curl -sS --fail-with-body "$url/" --data-binary "SELECT count() FROM $db.decisions")
    awk -v u="$user" -v s="$sys" -v n="$records" -v r="$rows" -v w="$(echo "$end - $start" | bc -l)" \
      -v rss="$rss" -v run="$run" -v spec="$spec" \
      'BEGIN { printf "run %d %-60s user %6.2f sys %5.2f = %6.2f µs/record (sys %4.1f%%) wall %5.1f s rss %d MB rows %d\n",
               run, spec, u, s, (u + s) * 1e6 / n, 100 * s / (u + s), w, rss / 1024, r }'
    curl -sS --fail-with-body "$url/" --data-binary "DROP DATABASE $db" >/dev/null
  done
done
