#!/usr/bin/env bash
# Runs persist's benchmarks with short settings and prints a table of the
# mean time per iteration: `cache` (L2 cache, a few minutes) and `anchors`
# (persist against raw sqlx, Diesel, SeaORM and rusqlite, issue 6; about
# 10 minutes), then writes BENCHMARKS.md and BENCHMARKS.csv at the repository
# root from the anchors figures (bench/report.py). Needs the machine's
# PostgreSQL (127.0.0.1:5432, database `test`) and Redis (127.0.0.1:6379).
# Extra arguments go to criterion (a filter such as `postgres`, or
# `--warm-up-time 3 --measurement-time 10` for steadier figures).
# BENCHES="anchors" runs only one bench; the run is pinned to CPU 0
# (`taskset -c 0`, where available) as the issue's anchor figures were.
set -euo pipefail
cd "$(dirname "$0")"
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
for bench in ${BENCHES:-cache anchors}; do
    "${pin[@]}" cargo bench --bench "$bench" -- --warm-up-time 1 --measurement-time 2 "$@"
done

# Summary of this run from criterion's estimates
# (target/criterion/<group>/<bench>/new/estimates.json, newer than $stamp).
command -v python3 >/dev/null || exit 0
STAMP="$stamp" python3 - <<'PY'
import json, os, pathlib
root = pathlib.Path("target/criterion")
since = os.path.getmtime(os.environ["STAMP"])
rows = []
for est in sorted(root.glob("*/*/new/estimates.json")):
    if est.stat().st_mtime < since:
        continue
    bench = json.loads((est.parent / "benchmark.json").read_text())
    e = json.loads(est.read_text())
    m = e["mean"]
    rows.append((bench["full_id"], m["point_estimate"], m["confidence_interval"]["lower_bound"], m["confidence_interval"]["upper_bound"]))
def fmt(ns):
    return f"{ns/1000:.2f} µs" if ns < 1e6 else f"{ns/1e6:.2f} ms"
print()
print(f"{'benchmark':<52} {'mean':>10}   95% CI of the mean")
for name, m, lo, hi in rows:
    print(f"{name:<52} {fmt(m):>10}   [{fmt(lo)}, {fmt(hi)}]")
mean = {name: m for name, m, _, _ in rows}
pg = mean.get("find_by_pk_fresh_session/postgres/db_only")
if pg:
    print()
    for v, target in (("in_process_l2", "target >= 20x"), ("redis_l2", "target > 1x"), ("near_cache", "")):
        for b in ("sqlite", "postgres"):
            hit = mean.get(f"find_by_pk_fresh_session/{b}/{v}")
            if hit:
                print(f"PostgreSQL lookup / {b} {v} hit: {pg / hit:.1f}x {target}".rstrip())
PY

# BENCHMARKS.md / BENCHMARKS.csv from this run's anchors figures.
if [[ " ${BENCHES:-cache anchors} " == *" anchors "* ]]; then
    python3 report.py --since "$stamp"
fi
