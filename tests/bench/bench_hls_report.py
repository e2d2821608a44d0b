#!/usr/bin/env python3
"""Table and target ratios for bench_hls.sh (stdlib only; reads bench.py's JSON lines).

Usage: bench_hls_report.py [results.jsonl]   (latest record per benchmark name)
"""

from __future__ import annotations

import json
import os
import sys

# (label, fetchdeck row, peer row, metric, limit): the targets of the HLS issue (3), then issue 12's
# (start-up under 0.15 s: fetchdeck no slower than yt-dlp -N16 paced, nor than ffmpeg for the same .ts).
TARGETS = [
    ("paced, 16 in flight: wall <= 0.9 x yt-dlp -N16", "fd_paced", "ytdlp_N16_paced", "wall", 0.9),
    ("paced, 16 in flight: CPU <= 0.5 x yt-dlp -N16", "fd_paced", "ytdlp_N16_paced", "cpu", 0.5),
    ("paced, 32 in flight: wall <= 0.5 x yt-dlp -N16", "fd_32_paced", "ytdlp_N16_paced", "wall", 0.5),
    ("unthrottled: wall <= 1.5 x ffmpeg", "fd_fast", "ffmpeg_copy_fast", "wall", 1.5),
    ("AES unthrottled: wall <= 1.0 x ffmpeg", "fd_aes_fast", "ffmpeg_copy_aes_fast", "wall", 1.0),
    ("issue 12, paced, 16 in flight, MP4: wall <= 1.0 x yt-dlp -N16", "fd_paced", "ytdlp_N16_paced", "wall", 1.0),
    ("issue 12, paced, 16 in flight, .ts: wall <= 1.0 x yt-dlp -N16", "fd_ts_paced", "ytdlp_N16_paced", "wall", 1.0),
    ("issue 12, unthrottled, same .ts: wall <= 1.0 x ffmpeg", "fd_ts_fast", "ffmpeg_copy_fast", "wall", 1.0),
]


def load(path: str) -> tuple[dict[str, dict], list[str]]:
    latest: dict[str, dict] = {}
    order: list[str] = []
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if record["name"] not in latest:
                order.append(record["name"])
            latest[record["name"]] = record
    return latest, order


def med(record: dict, metric: str) -> float:
    return float(record[metric]["median"])


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("PERF", "/tmp/fetchdeck-bench"), "results", "bench_hls.jsonl")
    latest, order = load(path)
    print("| row | runs | wall s med (min-max) | CPU s med (user/sys) | peak RSS MiB | ok |")
    print("|---|---|---|---|---|---|")
    for name in order:
        r = latest[name]
        ok = all(c == 0 for c in r["rcs"]) and r.get("verify_rc") in (0, None)
        print(f"| {name} | {r['runs']} | {med(r, 'wall'):.2f} ({r['wall']['min']:.2f}-{r['wall']['max']:.2f}) | "
              f"{med(r, 'cpu'):.2f} ({med(r, 'user'):.2f}/{med(r, 'sys'):.2f}) | {med(r, 'rss_mib'):.0f} | "
              f"{'yes' if ok else 'NO'} |")
    print()
    print("| target | fetchdeck | peer | ratio | met |")
    print("|---|---|---|---|---|")
    for label, ours, peer, metric, limit in TARGETS:
        if ours not in latest or peer not in latest:
            print(f"| {label} | - | - | - | not run ({ours if ours not in latest else peer} missing) |")
            continue
        a, b = med(latest[ours], metric), med(latest[peer], metric)
        ratio = a / b if b else float("inf")
        print(f"| {label} | {a:.2f} | {b:.2f} | {ratio:.2f} | {'yes' if ratio <= limit else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
