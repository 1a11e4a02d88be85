#!/usr/bin/env bash
# gatelog ingest vs ClickHouse's own JSON ingest, same gzip file, same server, one run.
#
#   bench/ingest_vs_clickhouse.sh [RECORDS]      (default 1000000; ./x bench-ingest runs it)
#
# 1. generates RECORDS http_requests (gzip NDJSON, unixnano) with the shared gen_samples.py,
#    cached under bench/data/;
# 2. starts one managed ClickHouse (`gatelog clickhouse run`) under bench/data/clickhouse;
# 3. baseline: curl POSTs the gzip file to `INSERT INTO bench_baseline.http_requests_json
#    FORMAT JSONEachRow` (table: bench/http_requests_equivalent.sql);
# 4. waits for background merges to settle, then times `gatelog ingest` of the same file into
#    database bench_gatelog (decisions + raw records + batches, through the spool, and the
#    tantivy index under bench/data/gatelog), until every sink has stored it;
# 5. prints both rates and the ratio, then the bytes on disk per million records of every
#    gatelog table (after merges settle), its index and the baseline's table; stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-1000000}"
shared="${GATELOG_SHARED:-$(pwd)/../shared}"
data=bench/data
mkdir -p "$data"
file="$data/http_requests_${records}.ndjson.gz"

if [ ! -s "$file" ]; then
  echo "generating $records http_requests records into $file (takes ~2 min per million)" >&2
  python3 "$shared/formats/gen_samples.py" --dataset http_requests --count "$records" \
    --timestamps unixnano --gzip --out "$file.tmp" --summary-out "$file.summary.json"
  mv "$file.tmp" "$file"
fi

# GATELOG_BENCH_BIN: another gatelog binary to time (e.g. a build of an older commit).
if [ -n "${GATELOG_BENCH_BIN:-}" ]; then
  bin="$GATELOG_BENCH_BIN"
else
  cargo build --release --locked -q -p gatelog
  bin=./target/release/gatelog
fi

rm -rf "$data/clickhouse"
url_file="$data/clickhouse.url"
rm -f "$url_file"
"$bin" clickhouse run --data-dir "$data/clickhouse" --url-file "$url_file" >"$data/clickhouse.out" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do [ -s "$url_file" ] && break; sleep 0.5; done
[ -s "$url_file" ] || { echo "managed ClickHouse did not start:" >&2; cat "$data/clickhouse.out" >&2; exit 1; }
url=$(cat "$url_file")
# CPU seconds (user + system) ClickHouse has used so far: both sides' CPU is reported, since
# on 2 cores the ratio is bounded by the CPU each side needs.
chpid=$(pgrep -f "clickhouse-server.*$data/clickhouse" | head -1)
ch_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$chpid/stat"; }
q() { curl -sS --fail-with-body "$url/" --data-binary "$1"; }
settle() {
  for _ in $(seq 1 240); do
    [ "$(q 'SELECT count() FROM system.merges')" = "0" ] && return 0
    sleep 0.5
  done
}

q "CREATE DATABASE bench_baseline"
sed "s/{db}/bench_baseline/" bench/http_requests_equivalent.sql | q "$(cat)"
bytes=$(stat -c %s "$file")
cpu0=$(ch_cpu)
start=$(date +%s.%N)
curl -sS --fail-with-body -H 'Content-Encoding: gzip' --data-binary @"$file" \
  "$url/?query=INSERT%20INTO%20bench_baseline.http_requests_json%20FORMAT%20JSONEachRow&input_format_skip_unknown_fields=1"
end=$(date +%s.%N)
ch_secs=$(echo "$end - $start" | bc -l)
base_cpu=$(echo "$(ch_cpu) - $cpu0" | bc -l)
ch_rows=$(q "SELECT count() FROM bench_baseline.http_requests_json")
settle

cpu0=$(ch_cpu)
start=$(date +%s.%N)
# gatelog ingest goes through the spool and the index under its data dir, as serve does.
rm -rf "$data/gatelog"
/usr/bin/time -f '%U %S' -o "$data/gatelog.time" "$bin" ingest ${GATELOG_BENCH_CONFIG:+--config "$GATELOG_BENCH_CONFIG"} --no-progress --data-dir "$data/gatelog" --clickhouse-url "$url" --clickhouse-database bench_gatelog --dataset http_requests "$file" >"$data/gatelog.out"
end=$(date +%s.%N)
gl_secs=$(echo "$end - $start" | bc -l)
gl_ch_cpu=$(echo "$(ch_cpu) - $cpu0" | bc -l)
gl_cpu=$(awk '{print $1 + $2}' "$data/gatelog.time")
gl_rows=$(q "SELECT count() FROM bench_gatelog.decisions")
# Raw evidence: batches since migration 18; a line per row before (GATELOG_BENCH_BIN of an older build).
if [ "$(q "EXISTS TABLE bench_gatelog.raw_batches")" = "1" ]; then
  raw_rows=$(q "SELECT count() FROM bench_gatelog.raw_batches")
else
  raw_rows=$(q "SELECT count() FROM bench_gatelog.raw_records")
fi
cat "$data/gatelog.out"

printf '\nfile: %s (%s records, %.1f MB gzip)\n' "$file" "$records" "$(echo "$bytes / 1000000" | bc -l)"
printf 'clickhouse JSONEachRow: %10d rows in %7.2f s = %9.0f rows/s\n' "$ch_rows" "$ch_secs" "$(echo "$ch_rows / $ch_secs" | bc -l)"
printf 'gatelog ingest:         %10d rows in %7.2f s = %9.0f rows/s  (+%d raw batches, or raw rows before migration 18)\n' "$gl_rows" "$gl_secs" "$(echo "$gl_rows / $gl_secs" | bc -l)" "$raw_rows"
printf 'ratio gatelog / clickhouse: %.2fx\n' "$(echo "($gl_rows / $gl_secs) / ($ch_rows / $ch_secs)" | bc -l)"
printf 'CPU seconds: baseline clickhouse %.1f; gatelog %.1f + its clickhouse inserts %.1f\n' "$base_cpu" "$gl_cpu" "$gl_ch_cpu"

# Bytes on disk, per million records: every table of gatelog's database (active parts, after
# merges settle), the tantivy index, and the baseline's one table.
settle
per_m() { echo "$1 * 1000000 / $records / 1000000" | bc -l; }
parts() { q "SELECT table, sum(bytes_on_disk) AS b FROM system.parts WHERE active AND database = '$1' GROUP BY table ORDER BY b DESC FORMAT TSV"; }
echo "bytes on disk per million records (MB):"
total=0
while IFS=$'\t' read -r table b; do
  printf '  %-24s %9.1f\n' "$table" "$(per_m "$b")"
  total=$((total + b))
done < <(parts bench_gatelog)
index=$(du -sb "$data/gatelog/index" 2>/dev/null | cut -f1 || echo 0)
printf '  %-24s %9.1f\n' "(tantivy index)" "$(per_m "${index:-0}")"
printf '  %-24s %9.1f  (ClickHouse tables + index)\n' "gatelog total" "$(per_m "$((total + ${index:-0}))")"
base=$(parts bench_baseline | awk -F'\t' '{s += $2} END {print s + 0}')
printf '  %-24s %9.1f  (the file gzip: %.1f)\n' "baseline JSONEachRow" "$(per_m "$base")" "$(per_m "$bytes")"
