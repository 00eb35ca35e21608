#!/usr/bin/env bash
# Runs persist's benchmarks with short settings and prints a table of the
# median time per iteration: `cache` (L2 cache) and `anchors` (persist
# against raw sqlx, Diesel, SeaORM, rusqlite and tokio-postgres on a SQLite
# WAL file, SQLite in memory and PostgreSQL), then writes BENCHMARKS.md,
# BENCHMARKS.csv and BENCHMARKS-<backend>.svg from the anchors figures
# (bench/report.py). The whole run takes about 14 minutes on the 2-core
# machine. Needs the machine's PostgreSQL (127.0.0.1:5432, database `test`)
# and Redis (127.0.0.1:6379).
#
# Environment:
#   BENCHES="anchors"           run only these benches (default: cache anchors)
#   BENCH_OUT=DIR               where the report goes (default: the repository root)
#   WARM_UP=0.5 MEASURE=2       criterion's warm-up and measurement time per
#                               benchmark, in seconds (with WARM_UP=1 the suite
#                               takes about 2 minutes longer, over 15)
#   PERSIST_BENCH_FEATURES=...  cargo features of persist-bench (default:
#                               sqlite-direct-toggle, the `persist-sqlx` contender,
#                               which needs persist-core's DbBuilder::sqlite_direct;
#                               set it empty to build without)
# Extra arguments go to criterion (a filter such as `postgres`; for steadier
# figures set WARM_UP=3 MEASURE=10). The run is
# pinned to CPU 0 (`taskset -c 0`, where available) as the issue's anchor
# figures were. Criterion's bootstrap is cut to 10,000 resamples: it only
# feeds the confidence intervals, not the medians the report uses.
set -euo pipefail
cd "$(dirname "$0")"
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
start=$(date +%s)
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
features=${PERSIST_BENCH_FEATURES-sqlite-direct-toggle}
feature_args=()
[[ -n "$features" ]] && feature_args=(--features "$features")
for bench in ${BENCHES:-cache anchors}; do
    "${pin[@]}" cargo bench "${feature_args[@]}" --bench "$bench" -- \
        --warm-up-time "${WARM_UP:-0.5}" --measurement-time "${MEASURE:-2}" --nresamples 10000 "$@"
done

# Summary of this run from criterion's estimates
# (target/criterion/<group>/<bench>/new/estimates.json, newer than $stamp).
command -v python3 >/dev/null || exit 0
STAMP="$stamp" python3 - <<'PY'
import json, os, pathlib
root = pathlib.Path("target/criterion")
since = os.path.getmtime(os.environ["STAMP"])
rows = []
for est in sorted(root.glob("**/new/estimates.json")):
    if est.stat().st_mtime < since:
        continue
    bench = json.loads((est.parent / "benchmark.json").read_text())
    e = json.loads(est.read_text())
    m = e["median"]
    rows.append((bench["full_id"], m["point_estimate"], m["confidence_interval"]["lower_bound"], m["confidence_interval"]["upper_bound"]))
def fmt(ns):
    return f"{ns/1000:.2f} µs" if ns < 1e6 else f"{ns/1e6:.2f} ms"
print()
print(f"{'benchmark':<58} {'median':>10}   95% CI of the median")
for name, m, lo, hi in rows:
    print(f"{name:<58} {fmt(m):>10}   [{fmt(lo)}, {fmt(hi)}]")
med = {name: m for name, m, _, _ in rows}
pg = med.get("find_by_pk_fresh_session/postgres/db_only")
if pg:
    print()
    for v, target in (("in_process_l2", "target >= 20x"), ("redis_l2", "target > 1x"), ("near_cache", "")):
        for b in ("sqlite", "postgres"):
            hit = med.get(f"find_by_pk_fresh_session/{b}/{v}")
            if hit:
                print(f"PostgreSQL lookup / {b} {v} hit: {pg / hit:.1f}x {target}".rstrip())
PY

# BENCHMARKS.md / .csv / -<backend>.svg from this run's anchors figures.
if [[ " ${BENCHES:-cache anchors} " == *" anchors "* ]]; then
    python3 report.py --since "$stamp" --out "${BENCH_OUT:-..}"
fi
echo "run.sh: $(( $(date +%s) - start )) s"
