#!/usr/bin/env bash
# HLS benchmark: `fetchdeck get` against yt-dlp's native HLS downloader (-N 16) and
# `ffmpeg -i URL -c copy`, on the 600-segment VOD (~250 MB) that ../shared/bench/make_data.sh
# makes, plain and AES-128, from unthrottled nginx (:8080, "fast") and from pace_server.py
# (:8082, "paced": every connection at 5 MiB/s from its first byte). Prints wall time, CPU
# seconds and peak RSS per row, then the ratios the HLS issue sets as targets.
#
#   bash ../shared/bench/servers.sh start    # once (setup_env.sh + make_data.sh before that)
#   bash tests/bench/bench_hls.sh            # MODE=fast|paced|fast+paced (default), RUNS, SLOW_RUNS
#   SKIP_SLOW_FFMPEG=1 ...                   # skip ffmpeg on the paced server (~25 s a run)
#   FD="fetchdeck"                           # the fetchdeck command (default: this checkout's venv)
#   HLS_FAST_URL=http://127.0.0.1:18080 HLS_PACED_URL=http://127.0.0.1:18082 ...  # servers on other ports
#
# fetchdeck rows: fd_* = default output (MP4, remuxed by the bundled ffmpeg while segments
# arrive), fd_ts_* = `--name x.ts` (segments concatenated, no remux: what the peers produce).
# In-flight segments: FETCHDECK_DOWNLOAD_SEGMENT_THREADS (16 unless the row says 32).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BENCH=${BENCH:-$(cd "$REPO/../shared/bench" 2>/dev/null && pwd || echo /work/shared/bench)}
export RES=${RES:-${PERF:-/tmp/fetchdeck-bench}/results/bench_hls.jsonl}
source "$BENCH/common.sh"
FAST=${HLS_FAST_URL:-$FAST}
PACED=${HLS_PACED_URL:-$PACED}
MODE=${MODE:-fast+paced}

if [[ -z ${FD:-} ]]; then
  for py in "$REPO/.venv/bin/python" /tmp/fdvenv/bin/python python3; do
    if [[ -x $py || $py == python3 ]] && (cd "$REPO" && "$py" -c 'import tui.cli' 2>/dev/null); then
      FD="$py -m tui.cli"; break
    fi
  done
  # The sources byte-compiled once, as an installed fetchdeck has them (with PYTHONDONTWRITEBYTECODE set,
  # every run would otherwise compile them again inside its timed start-up).
  (cd "$REPO" && ${FD% -m tui.cli} -m compileall -q core server tui >/dev/null) || true
fi
[[ -n ${FD:-} ]] || { echo "bench_hls: no python that can import tui.cli; set FD" >&2; exit 2; }
cd "$REPO"   # `python -m tui.cli` from the checkout
for url in "$FAST/hls/index.m3u8" "$PACED/hls/index.m3u8"; do
  curl -sf -o /dev/null -r 0-0 "$url" || { echo "bench_hls: $url not served; run $BENCH/servers.sh start" >&2; exit 2; }
done

DUR() { echo "d=\$(ffprobe -v error -show_entries format=duration -of csv=p=0 '$1'); [ \${d%.*} -ge 1199 ]"; }
FDGET() {  # FDGET THREADS NAME URL
  echo "env FETCHDECK_DOWNLOAD_SEGMENT_THREADS=$1 $FD get $3 --name $2 --download-dir $OUT/fd --data-dir $OUT/fd-data"
}
YT() { local py=$1; shift; echo "$(dirname "$py")/yt-dlp --ignore-config --no-cache-dir --no-progress --no-part --no-mtime --force-overwrites $*"; }
FF=(ffmpeg -nostdin -hide_banner -loglevel error -y)
V_TS="cat $PERF/data/hls/seg_*.ts | cmp -s - $OUT/fd/bench.ts"

for srv in fast paced; do
  [[ $MODE != *$srv* ]] && continue
  case $srv in fast) U=$FAST; R=$RUNS; TO=120; w=1;; paced) U=$PACED; R=$SLOW_RUNS; TO=300; w=0;; esac
  # shellcheck disable=SC2046  # the command lines are meant to be split into words
  bench fd_$srv $R $w $TO "$HLS_BYTES" "$(DUR "$OUT/fd/bench.mp4")" -- $(FDGET 16 bench.mp4 "$U/hls/index.m3u8")
  bench fd_ts_$srv $R $w $TO "$HLS_BYTES" "$V_TS" -- $(FDGET 16 bench.ts "$U/hls/index.m3u8")
  bench fd_aes_$srv $R $w $TO "$HLS_BYTES" "$(DUR "$OUT/fd/bench.mp4")" -- $(FDGET 16 bench.mp4 "$U/hls_aes/index.m3u8")
  if [[ $srv == paced ]]; then
    bench fd_32_$srv $R $w $TO "$HLS_BYTES" "$(DUR "$OUT/fd/bench.mp4")" -- $(FDGET 32 bench.mp4 "$U/hls/index.m3u8")
    bench fd_ts_32_$srv $R $w $TO "$HLS_BYTES" "$V_TS" -- $(FDGET 32 bench.ts "$U/hls/index.m3u8")
  fi
  bench ytdlp_N16_$srv $R $w $TO "$HLS_BYTES" "$(DUR "$OUT/ytdlp.mp4")" -- \
    $(YT "$PY" --fixup never -N 16) -o "$OUT/ytdlp.%(ext)s" "$U/hls/index.m3u8"
  bench ytdlp_aes_N16_crypto_$srv $R $w $TO "$HLS_BYTES" "$(DUR "$OUT/ytdlp.mp4")" -- \
    $(YT "$PY_CRYPTO" --fixup never -N 16) -o "$OUT/ytdlp.%(ext)s" "$U/hls_aes/index.m3u8"
  if [[ $srv == fast || -z ${SKIP_SLOW_FFMPEG:-} ]]; then
    bench ffmpeg_copy_$srv $R $w $TO "$HLS_BYTES" "$(DUR "$OUT/ffmpeg.ts")" -- \
      "${FF[@]}" -i "$U/hls/index.m3u8" -map 0 -c copy "$OUT/ffmpeg.ts"
    bench ffmpeg_copy_aes_$srv $R $w $TO "$HLS_BYTES" "$(DUR "$OUT/ffmpeg.ts")" -- \
      "${FF[@]}" -i "$U/hls_aes/index.m3u8" -map 0 -c copy "$OUT/ffmpeg.ts"
  fi
done

"$PY" "$HERE/bench_hls_report.py" "$RES"
