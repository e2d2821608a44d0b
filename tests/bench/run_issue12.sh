#!/usr/bin/env bash
# Start-up, direct HTTP and HLS, each beside its peers, in one run (issue 12's benchmark rows).
#
#   bash ../shared/bench/setup_env.sh && bash ../shared/bench/make_data.sh   # once
#   bash ../shared/bench/servers.sh start
#   bash tests/bench/run_issue12.sh 2>&1 | tee /tmp/issue12-bench.txt
#   bash ../shared/bench/servers.sh stop
#
# Knobs: STARTUP_RUNS (20), RUNS / SLOW_RUNS (bench_http.sh, bench_hls.sh), MODE is per script.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"
echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?') load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== start-up: fetchdeck get (tiny file) and --version beside curl and aria2c"
"$REPO/.venv/bin/python" "$HERE/bench_startup.py" --runs "${STARTUP_RUNS:-20}"
echo "== direct HTTP: 1 GiB, unthrottled and 5 MiB/s per connection"
MODE=all bash "$HERE/bench_http.sh"
echo "== HLS: 600-segment VOD, unthrottled and paced"
SKIP_SLOW_FFMPEG=${SKIP_SLOW_FFMPEG:-1} bash "$HERE/bench_hls.sh"
echo "== done $(date -u +%FT%TZ)"
