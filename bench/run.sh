#!/usr/bin/env bash
# Runs persist's benchmarks with short settings and prints a table of the
# median time per iteration: `cache` (L2 cache) and `anchors` (persist
# against raw sqlx, Diesel, SeaORM, rusqlite and tokio-postgres on a SQLite
# WAL file, SQLite in memory and PostgreSQL), then writes BENCHMARKS.md,
# BENCHMARKS.csv and BENCHMARKS-<backend>.svg from the anchors figures
# (bench/report.py; its read tables and targets judge persist against the
# other libraries' in-transaction reads, `sqlx-tx` and the like, and it lists
# persist's reads that are more than 5% slower than the committed
# BENCHMARKS.csv). The whole run takes about 19 minutes on the 2-core
# machine (estimated: the in-transaction reads add some 100 benchmarks of
# about 3 s each). Needs the machine's PostgreSQL (127.0.0.1:5432, database `test`)
# and Redis (127.0.0.1:6379).
#
# Environment:
#   BENCHES="anchors"           run only these benches (default: cache anchors;
#                               also: uow, audit — history and interceptors)
#   BENCH_OUT=DIR               where the report goes (default: the repository root)
#   WARM_UP=0.5 MEASURE=2       criterion's warm-up and measurement time per
#                               benchmark, in seconds (with WARM_UP=1 the suite
#                               takes about 2 minutes longer, over 20)
#   PERSIST_BENCH_FEATURES=...  cargo features of persist-bench (default:
#                               sqlite-direct-toggle, the `persist-sqlx` contender,
#                               which needs persist-core's DbBuilder::sqlite_direct;
#                               set it empty to build without)
#   WEB_BENCHES="sessions layer encoding"
#                               also run these benches of web-bench/ (persist-axum:
#                               session stores, the request layer, the session
#                               encoding; a workspace of its own, see
#                               web-bench/README.md); set alone, without BENCHES,
#                               only they run (about 3 minutes for all three)
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
# WEB_BENCHES alone runs only the web benches; BENCHES, set or defaulted,
# names persist-bench's.
if [[ -n "${WEB_BENCHES:-}" && -z "${BENCHES+set}" ]]; then
    benches=""
else
    benches=${BENCHES:-cache anchors}
fi
crit_roots="${CARGO_TARGET_DIR:-target}/criterion"
for bench in $benches; do
    "${pin[@]}" cargo bench "${feature_args[@]}" --bench "$bench" -- \
        --warm-up-time "${WARM_UP:-0.5}" --measurement-time "${MEASURE:-2}" --nresamples 10000 "$@"
done
if [[ -n "${WEB_BENCHES:-}" ]]; then
    web_target=${CARGO_TARGET_DIR:-$PWD/web-bench/target}
    crit_roots="$crit_roots:$web_target/criterion"
    for bench in $WEB_BENCHES; do
        (cd web-bench && "${pin[@]}" cargo bench --bench "$bench" -- \
            --warm-up-time "${WARM_UP:-0.5}" --measurement-time "${MEASURE:-2}" --nresamples 10000 "$@")
    done
fi

# Summary of this run from criterion's estimates
# (target/criterion/<group>/<bench>/new/estimates.json, newer than $stamp).
command -v python3 >/dev/null || exit 0
STAMP="$stamp" CRIT_ROOTS="$crit_roots" python3 - <<'PY'
import json, os, pathlib
since = os.path.getmtime(os.environ["STAMP"])
rows = []
ests = [e for r in os.environ["CRIT_ROOTS"].split(":") for e in sorted(pathlib.Path(r).glob("**/new/estimates.json"))]
for est in ests:
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
# persist-axum's goals (web-bench): the store at most 1.1x the sqlx store on
# PostgreSQL; with the cache tier within 1.5x of the Redis store.
ratios = [(f"sessions/{op}/{a}", f"sessions/{op}/{b}", goal)
          for op in ("load", "save")
          for a, b, goal in (("persist_pg", "sqlx_store_pg", 1.1),
                             ("persist_pg_cached", "redis_store", 1.5),
                             ("persist_pg_redis", "redis_store", 1.5),
                             ("floor_in_tx", "floor_autocommit", None))]
ratios += [(f"layer/{b}/{a}", f"layer/{b}/raw_sqlx", None)
           for b in ("postgres", "sqlite") for a in ("persist_find", "persist_find_ro")]
ratios += [("layer/no_db/persist_layer", "layer/no_db/plain", None)]
# History and interceptors (benches/audit.rs): audit at most 1.5x the plain
# write on PostgreSQL; an empty interceptor list costs nothing measurable.
ratios += [(f"audit/{b}/{w}/{a}", f"audit/{b}/{w}/plain", 1.5 if (a, b) == ("audit", "postgres") else None)
           for b in ("postgres", "sqlite") for w in ("insert_1000", "uow_update_1000")
           for a in ("audit", "noop-interceptor")]
printed = False
for a, b, goal in ratios:
    if a in med and b in med:
        if not printed:
            print()
            printed = True
        verdict = "" if goal is None else (f"  (goal <= {goal}x: met)" if med[a] / med[b] <= goal else f"  (goal <= {goal}x: missed)")
        print(f"{a} / {b}: {med[a] / med[b]:.2f}x{verdict}")
PY

# BENCHMARKS.md / .csv / -<backend>.svg from this run's anchors figures.
if [[ " $benches " == *" anchors "* ]]; then
    python3 report.py --since "$stamp" --out "${BENCH_OUT:-..}"
fi
echo "run.sh: $(( $(date +%s) - start )) s"
