#!/usr/bin/env bash
# fetchdeck get vs aria2c vs curl: a 1 GiB file from local nginx, unthrottled (:8080)
# and throttled to 5 MiB/s per connection (:8081). Prints wall, MB/s, CPU-s, peak RSS,
# and ratios against aria2c -x16 (issue 2's targets; issue 12: throttled CPU-s per GB <= 1.5x aria2c).
# CPU is user+sys of the process and its children (less load-sensitive than wall time).
# Loopback only; every run is bounded.
#
#   bash ../shared/bench/setup_env.sh && bash ../shared/bench/make_data.sh   # once
#   bash ../shared/bench/servers.sh start
#   bash tests/bench/bench_http.sh            # MODE=fast|slow|all (default all)
#   bash ../shared/bench/servers.sh stop
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BENCH=${BENCH:-$REPO/../shared/bench}
export RES=${RES:-/tmp/fetchdeck-bench/results/http.jsonl}
source "$BENCH/common.sh"
MODE=${MODE:-all}
FD=${FETCHDECK:-$REPO/.venv/bin/fetchdeck}
[[ -x $FD ]] || FD=$(command -v fetchdeck)
: > "$RES"
# An installed fetchdeck has its bytecode compiled; a checkout run with PYTHONDONTWRITEBYTECODE=1
# would compile every module on every run (about 0.5 CPU-s). Cache it outside the tree, warm it once.
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX=${PYTHONPYCACHEPREFIX:-$PERF/pycache}
"$FD" --version > /dev/null

# Each run gets a fresh data dir and download dir (inside $OUT, which CLEAN empties).
F=(env FD="$FD" OUT="$OUT" bash -c '"$FD" get "$0" --download-dir "$OUT" --data-dir "$OUT/.fd" -x "$1" > /dev/null')
A=(aria2c -q --allow-overwrite=true --auto-file-renaming=false --summary-interval=0 -d "$OUT" -o big.bin)
V="$(VERIFY_BIG $OUT/big.bin)"

if [[ $MODE == fast || $MODE == all ]]; then
  bench fetchdeck_x16_fast "$RUNS" 1 120 "$BIG_BYTES" "$V" -- "${F[@]}" "$FAST/big.bin" 16
  bench fetchdeck_x8_fast "$RUNS" 1 120 "$BIG_BYTES" "$V" -- "${F[@]}" "$FAST/big.bin" 8
  bench aria2_x16_fast "$RUNS" 1 120 "$BIG_BYTES" "$V" -- "${A[@]}" -x16 -s16 -k1M "$FAST/big.bin"
  bench curl_fast "$RUNS" 1 120 "$BIG_BYTES" "$V" -- curl -sS -o "$OUT/big.bin" "$FAST/big.bin"
fi
if [[ $MODE == slow || $MODE == all ]]; then
  bench fetchdeck_x32_slow "$SLOW_RUNS" 0 200 "$BIG_BYTES" "$V" -- "${F[@]}" "$SLOW/big.bin" 32
  bench fetchdeck_x16_slow "$SLOW_RUNS" 0 200 "$BIG_BYTES" "$V" -- "${F[@]}" "$SLOW/big.bin" 16
  bench aria2_x16_slow "$SLOW_RUNS" 0 200 "$BIG_BYTES" "$V" -- "${A[@]}" -x16 -s16 -k1M "$SLOW/big.bin"
fi

"$PY" "$BENCH/summarize.py" "$RES"
"$PY" - "$RES" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line); rows[r["name"]] = r
def ratio(a, b, key="mbps"):
    if a in rows and b in rows:
        x, y = rows[a][key]["median"], rows[b][key]["median"]
        return f"{x / y:.2f}x"
    return "-"
def cpu_per_gb(n):
    r = rows.get(n)
    return f"{r['cpu']['median'] / (r['bytes'] / 1e9):.2f}" if r else "-"
print()
print("| comparison | ratio | target |")
print("|---|---|---|")
print(f"| unthrottled throughput, fetchdeck x16 / aria2c x16 | {ratio('fetchdeck_x16_fast', 'aria2_x16_fast')} | >= 1.0x |")
print(f"| unthrottled CPU-s per GB, fetchdeck x16 / aria2c x16 | {ratio('fetchdeck_x16_fast', 'aria2_x16_fast', 'cpu')} "
      f"({cpu_per_gb('fetchdeck_x16_fast')} vs {cpu_per_gb('aria2_x16_fast')}) | <= 1.5x |")
print(f"| throttled CPU-s per GB (user+sys), fetchdeck x16 / aria2c x16 | "
      f"{ratio('fetchdeck_x16_slow', 'aria2_x16_slow', 'cpu')} "
      f"({cpu_per_gb('fetchdeck_x16_slow')} vs {cpu_per_gb('aria2_x16_slow')}) | <= 1.5x |")
print(f"| throttled throughput, fetchdeck x32 / aria2c x16 | {ratio('fetchdeck_x32_slow', 'aria2_x16_slow')} | >= 1.8x |")
print(f"| throttled throughput, fetchdeck x16 / aria2c x16 | {ratio('fetchdeck_x16_slow', 'aria2_x16_slow')} | >= 1.0x |")
PY
