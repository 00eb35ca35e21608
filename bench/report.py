#!/usr/bin/env python3
"""Writes BENCHMARKS.md, BENCHMARKS.csv and one plot per backend
(BENCHMARKS-<backend>.svg) from the criterion estimates of the `anchors`
bench (bench/target/criterion/<backend>_<workload>/<library>/new/).

Usage: python3 bench/report.py [--since FILE] [--out DIR] [--note TEXT] [--previous CSV]
  --since FILE    only estimates newer than FILE (this run's)
  --out DIR       where the files go (default: the repository root)
  --note TEXT     a paragraph appended under "Notes"
  --previous CSV  the run to compare the read workloads with (default: the
                  committed BENCHMARKS.csv, `git show HEAD:BENCHMARKS.csv`)

Criterion's estimates are read from $CARGO_TARGET_DIR/criterion when that is
set (as `cargo bench` writes them), else bench/target/criterion.

The read workloads are measured twice for the other libraries: in autocommit
(`sqlx`, `diesel`, …) and inside one transaction held across the measurement
(`sqlx-tx`, `diesel-tx`, …), as persist's session is. The main tables, the
plots and the targets judge persist against the in-transaction figures where
they exist ("like with like"); a second table per backend keeps the
autocommit reads.

Every figure is criterion's median point estimate (`estimates.json`,
`median.point_estimate`), in nanoseconds per iteration. The plots are
hand-written SVG (no plotting library needed).
"""
import html
import json
import math
import os
import pathlib
import platform
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
CRIT = (pathlib.Path(os.environ["CARGO_TARGET_DIR"]).resolve() if os.environ.get("CARGO_TARGET_DIR")
        else HERE / "target") / "criterion"


def arg(name, default=None):
    if name in sys.argv:
        i = sys.argv.index(name)
        if i + 1 >= len(sys.argv):
            sys.exit(f"{name} needs a value")
        return sys.argv[i + 1]
    return default


since = os.path.getmtime(arg("--since")) if arg("--since") else 0.0
OUT = pathlib.Path(arg("--out", str(ROOT))).resolve()
OUT.mkdir(parents=True, exist_ok=True)

BACKENDS = ["sqlite", "sqlite_memory", "postgres"]
TITLES = {
    "sqlite": "SQLite (WAL file)",
    "sqlite_memory": "SQLite (in memory)",
    "postgres": "PostgreSQL (127.0.0.1)",
}
WORKLOADS = [
    "trivial_1", "trivial_100", "trivial_10000",
    "medium_1", "medium_100", "medium_10000",
    "insert_1", "insert_100", "insert_1000",
    "associations",
    "find_by_key", "find_by_key_identity_map", "find_by_key_l2",
    "uow_update_1000", "uow_insert_10000", "single_inserts_10000", "multi_insert_10000",
]
# The columns of the main tables and the plots: for a read workload a library's
# figure there is its in-transaction variant (`<library>-tx`) where measured.
LIBRARIES = ["persist", "persist-autocommit", "persist-uow", "persist-sqlx", "sqlx", "sea-orm",
             "diesel", "rusqlite", "tokio-postgres"]
# Libraries with an in-transaction variant of the read workloads.
TX = ["sqlx", "sea-orm", "diesel", "rusqlite", "tokio-postgres"]
# Every id the CSV keeps: the autocommit reads and sqlx-pool1 too.
ALL_IDS = LIBRARIES[:5] + ["sqlx-tx", "sqlx-pool1"] + [
    x for c in LIBRARIES[5:] for x in (c, c + "-tx")]
# The columns of the autocommit-reads table.
AUTOCOMMIT = ["persist", "persist-sqlx", "sqlx", "sqlx-pool1", "sea-orm", "diesel", "rusqlite",
              "tokio-postgres"]
READS = ["trivial_1", "trivial_100", "trivial_10000", "medium_1", "medium_100", "medium_10000",
         "associations", "find_by_key", "find_by_key_identity_map", "find_by_key_l2"]
COLORS = {
    "persist": "#1f77b4", "persist-autocommit": "#08306b", "persist-uow": "#17becf",
    "persist-sqlx": "#aec7e8", "sqlx": "#7f7f7f", "sqlx-pool1": "#c7c7c7", "sea-orm": "#ff7f0e",
    "diesel": "#d62728", "rusqlite": "#2ca02c", "tokio-postgres": "#9467bd",
}
# The raw-sqlx figure each workload is compared with (default: the same workload).
REFERENCE = {
    "find_by_key_identity_map": "find_by_key",
    "find_by_key_l2": "find_by_key",
    "uow_insert_10000": "multi_insert_10000",
}

rows = {}  # (backend, workload, library) -> median ns
for est in CRIT.glob("*/*/new/estimates.json"):
    if est.stat().st_mtime < since:
        continue
    bench = json.loads((est.parent / "benchmark.json").read_text())
    parts = tuple(bench["full_id"].split("/"))
    if len(parts) != 3 or parts[0] not in BACKENDS:
        continue
    e = json.loads(est.read_text())
    rows[parts] = e["median"]["point_estimate"]

if not rows:
    sys.exit(f"no anchors estimates under {CRIT}" + (" newer than --since" if since else ""))


def med(b, w, c):
    return rows.get((b, w, c))


def like(b, w, c):
    """The id that judges library `c` on workload `w`: its in-transaction
    variant where measured (the read workloads), else `c` itself."""
    return c + "-tx" if c in TX and (b, w, c + "-tx") in rows else c


def pick(b, w, c):
    return med(b, w, like(b, w, c))


def ref(b, w):
    """Raw sqlx's figure each workload is compared with: the in-transaction
    one where measured, else the autocommit one."""
    return pick(b, REFERENCE.get(w, w), "sqlx")


def ratio(b, w, c):
    r, base = pick(b, w, c), ref(b, w)
    if r is None or not base:
        return None
    return r / base


def ratio_autocommit(b, w, c):
    r, base = med(b, w, c), med(b, REFERENCE.get(w, w), "sqlx")
    if r is None or not base:
        return None
    return r / base


def fmt(ns):
    if ns is None:
        return "—"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def fmt_ratio(q):
    if q < 0.1:
        return f"{q:.3f}×"
    return f"{q:.2f}×"


# ----- CSV -------------------------------------------------------------------------
with open(OUT / "BENCHMARKS.csv", "w") as f:
    f.write("backend,workload,library,median_ns\n")
    for b in BACKENDS:
        for w in WORKLOADS:
            for c in ALL_IDS:
                r = med(b, w, c)
                if r is not None:
                    f.write(f"{b},{w},{c},{r:.0f}\n")


# ----- plots -----------------------------------------------------------------------
def svg_plot(b):
    """Horizontal bars of each library's ratio to raw sqlx, per workload, on a
    log scale centred on 1 (bars to the left: faster than raw sqlx)."""
    ws = [w for w in WORKLOADS if any(ratio(b, w, c) is not None for c in LIBRARIES if c != "sqlx")]
    libs = [c for c in LIBRARIES if c != "sqlx" and any(ratio(b, w, c) is not None for w in ws)]
    if not ws:
        return None
    qs = [ratio(b, w, c) for w in ws for c in libs if ratio(b, w, c) is not None]
    lo = 10 ** math.floor(math.log10(min(qs + [1.0])))
    hi = 10 ** math.ceil(math.log10(max(qs + [1.0]) * 1.0001))
    if hi <= 1:
        hi = 10
    bar, gap, left, width, top = 11, 10, 160, 560, 72
    label_w = 150
    height_rows = sum(max(1, sum(ratio(b, w, c) is not None for c in libs)) * bar + gap for w in ws)
    legend_h = 20 * math.ceil(len(libs) / 5)
    H = top + height_rows + 40 + legend_h
    W = left + width + label_w + 20

    def x(q):
        return left + width * (math.log10(q) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">'
           f'{html.escape(TITLES[b])}: median time ÷ raw sqlx (log scale)</text>',
           f'<text x="{W / 2}" y="36" text-anchor="middle" fill="#555">left of 1×: faster than '
           f'raw sqlx on one connection (the black line); reads in one transaction (-tx)</text>',
           f'<text x="{W / 2}" y="50" text-anchor="middle" fill="#555">find_by_key_identity_map '
           f'and find_by_key_l2 against sqlx find_by_key, uow_insert_10000 against sqlx '
           f'multi_insert_10000</text>']
    # decades
    d = lo
    while d <= hi * 1.0001:
        xx = x(d)
        out.append(f'<line x1="{xx:.1f}" y1="{top - 6}" x2="{xx:.1f}" y2="{top + height_rows}" '
                   f'stroke="{"#000" if abs(d - 1) < 1e-9 else "#ddd"}" stroke-width="1"/>')
        out.append(f'<text x="{xx:.1f}" y="{top + height_rows + 14}" text-anchor="middle">'
                   f'{d:g}×</text>')
        d *= 10
    y = top
    for i, w in enumerate(ws):
        present = [c for c in libs if ratio(b, w, c) is not None]
        h = max(1, len(present)) * bar
        if i % 2 == 0:
            out.append(f'<rect x="0" y="{y - gap / 2:.1f}" width="{W}" height="{h + gap}" fill="#f6f6f6"/>')
        out.append(f'<text x="{left - 8}" y="{y + h / 2 + 4:.1f}" text-anchor="end">{w}</text>')
        for j, c in enumerate(present):
            q = ratio(b, w, c)
            x0, x1 = sorted((x(1.0), x(min(max(q, lo), hi))))
            yy = y + j * bar
            out.append(f'<rect x="{x0:.1f}" y="{yy + 1}" width="{max(x1 - x0, 1):.1f}" '
                       f'height="{bar - 2}" fill="{COLORS[c]}"><title>{like(b, w, c)} {w}: '
                       f'{fmt(pick(b, w, c))} ({fmt_ratio(q)})</title></rect>')
            out.append(f'<text x="{left + width + 6}" y="{yy + bar - 2}" font-size="10">'
                       f'{like(b, w, c)} {fmt_ratio(q)}</text>')
        y += h + gap
    ly = top + height_rows + 30
    for k, c in enumerate(libs):
        lx = 20 + (k % 5) * 170
        yy = ly + 20 * (k // 5)
        out.append(f'<rect x="{lx}" y="{yy}" width="12" height="12" fill="{COLORS[c]}"/>')
        out.append(f'<text x="{lx + 16}" y="{yy + 10}">{c}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


plots = {}
for b in BACKENDS:
    s = svg_plot(b)
    if s:
        name = f"BENCHMARKS-{b}.svg"
        (OUT / name).write_text(s)
        plots[b] = name


# ----- machine and versions --------------------------------------------------------
def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def versions():
    lock = (HERE / "Cargo.lock").read_text()
    out = {}
    for name in ["sqlx", "diesel", "sea-orm", "rusqlite", "libsqlite3-sys", "tokio-postgres",
                 "moka", "criterion", "tokio"]:
        m = re.search(r'name = "' + re.escape(name) + r'"\nversion = "([^"]+)"', lock)
        if m:
            out[name] = m.group(1)
    return out


def cmd(args):
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or "?"
    except Exception:
        return "?"


def pg_version():
    v = cmd(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-tAc", "SHOW server_version"])
    if v != "?":
        return f"PostgreSQL {v.split()[0]}"
    return cmd(["psql", "--version"])


# ----- Markdown --------------------------------------------------------------------
present = lambda b: [c for c in LIBRARIES if any(pick(b, w, c) is not None for w in WORKLOADS)]
md = []
md.append("# Benchmarks: persist against the anchors\n")
md.append(
    "Generated by `bench/report.py` from one run of `bash bench/run.sh` "
    "(criterion bench `anchors`, `bench/persist-bench/benches/anchors.rs`). Raw figures: "
    "[BENCHMARKS.csv](BENCHMARKS.csv) (`backend,workload,library,median_ns`, criterion's "
    "median per iteration). Plots of the ratios to raw sqlx: "
    + ", ".join(f"[{TITLES[b]}]({p})" for b, p in plots.items()) + ".\n"
)
md.append("## Method\n")
md.append(
    "- A replica of Diesel's `diesel_bench`: `users(id, name, hair_color NULL)`, "
    "`posts(id, user_id, title, body NULL)`, `comments(id, post_id, text)`, indexes on "
    "`users(hair_color)`, `posts(user_id)` and `comments(post_id)`; seeded `name = \"User {i}\"` "
    "(i from 0), hair colour black for even i, brown for odd. As in diesel_bench the medium "
    "query's `posts` is empty (every right side is `None`), so half the users come back.\n"
    "- Keys are `BIGINT` / `i64` (diesel_bench: `SERIAL` / `i32`) for every contender: when the "
    "suite was written persist read a generated `INT4` key as `INT8` on PostgreSQL (fixed "
    "since, with a test on all backends).\n"
    "- Workloads: `trivial_N` all N users into `Vec<User>`; `medium_N` `users LEFT JOIN posts "
    "WHERE hair_color = 'black'` into `Vec<(User, Option<Post>)>` over N users; `insert_N` N "
    "users in one multi-row INSERT; `associations` diesel_bench's: 100 users × 10 posts × 10 "
    "comments, loaded as users, their posts and the posts' comments (three queries) and grouped "
    "into `Vec<(User, Vec<(Post, Vec<Comment>)>)>`; `find_by_key` a random key not yet in the "
    "session (10,000 users); `find_by_key_identity_map` a repeat lookup in the same session, "
    "including the clone; `find_by_key_l2` a lookup in a fresh session (`session()`, `find`, "
    "`commit()`) whose key is already in persist's in-process L2 (`persist-cache`'s "
    "`InProcessCache` on a second `Db`, 1,000 hot keys warmed first; the identity map never "
    "answers, no SQL is sent); `uow_update_1000` in one transaction load 1,000 users and change "
    "`hair_color` on each (a new colour every iteration); `uow_insert_10000` 10,000 `add`s and "
    "one `commit`; `single_inserts_10000` 10,000 awaited single-row INSERTs in one "
    "transaction; `multi_insert_10000` raw sqlx's hand-written multi-row INSERT of the same "
    "10,000 rows in one transaction (one statement), the reference of `uow_insert_10000`.\n"
    "- Contenders: **persist** (session API: `query().all()`, `query().left_join::<Post>()"
    ".filter(…).all()`, `insert_many`, `find`, `insert`; on SQLite through its direct path, "
    "on by default: a session locks the raw handle of its sqlx connection once per "
    "transaction and steps statements itself, `DbBuilder::sqlite_direct`; associations through the batched "
    "relation loader declared with `has_many(Post, by = \"user_id\")` / `has_many(Comment, by = "
    "\"post_id\")`: `users.load::<Post>(&s)` then `posts.load::<Comment>(&s)`, one `SELECT … "
    "WHERE fk IN (…)` each, `fk = ANY($1)` with one array bind on PostgreSQL); **persist-uow** (`add_many` + `commit`; `update` on each loaded "
    "row + `commit`, which sends the 1,000 changed rows as one batched, version-checked UPDATE: "
    "`UPDATE … FROM (VALUES …)` on PostgreSQL, `WITH … UPDATE … FROM` on SQLite); **persist-sqlx** "
    "(where present: persist with `Db::builder().sqlite_direct(false)`, SQLite reads through "
    "sqlx instead of the raw handle; trivial, medium and find_by_key); **sqlx** (hand-written "
    "SQL and `FromRow` on ONE `SqliteConnection` / `PgConnection`, no pool; the reference of "
    "every ratio; associations with `IN (?, …)` on SQLite and `= ANY($1)` on PostgreSQL plus "
    "`HashMap` grouping; `uow_update_1000` as the same `SELECT` then 1,000 single `UPDATE users "
    "SET hair_color = ? WHERE id = ?` in one transaction); **sqlx-pool1** (the same SQL through "
    "a `Pool` with `max_connections(1)`, default pool options otherwise, so "
    "`test_before_acquire` is on: every statement acquires the connection from the pool); **diesel** (sync, its own connection, statement cache on; "
    "associations with `belonging_to` + `grouped_by`); **sea-orm** (2.0 on the same sqlx 0.9, "
    "a pool of one via `SqlxSqliteConnector::from_sqlx_sqlite_pool` / "
    "`SqlxPostgresConnector`; inserts via `insert_many(..).exec_without_returning` / "
    "`insert(..).exec_without_returning`, associations with `load_many` twice, updates with "
    "`ActiveModel::update`); **rusqlite** (SQLite only, `prepare_cached`); **tokio-postgres** "
    "(PostgreSQL only, statements prepared once, `= ANY($1)` for associations, `BEGIN`/`COMMIT` "
    "by `batch_execute`); **persist-autocommit** (`insert_1` on PostgreSQL only — on SQLite "
    "autocommit sessions writing one after another hang on persist's direct path, so the bench "
    "skips them there: the same `insert_many` in a "
    "session opened with `SessionOptions::default().autocommit()`, one statement committed by "
    "itself, no `BEGIN`/`COMMIT`; such a session refuses a write of several rows, which the "
    "bench asserts for `insert_100` and `insert_1000`). Every single-row write contender runs "
    "in one explicit transaction.\n"
    "- **Reads, like with like.** persist's reads run inside one session held across the whole "
    "measurement (its intended use; the identity map grows as rows are read and each read "
    "merges into it); `find_by_key` clears the session, untimed, once every key has been "
    "read. The other libraries' reads (`trivial_N`, `medium_N`, `associations`, "
    "`find_by_key`) run twice: inside one transaction begun before the contender's "
    "measurement and committed after it (**sqlx-tx**: `Connection::begin` and `&mut *tx` as "
    "the executor; **diesel-tx**: its transaction manager's `BEGIN`/`COMMIT`; "
    "**sea-orm-tx**: `db.begin()` and the `DatabaseTransaction` as the connection; "
    "**rusqlite-tx**, **tokio-postgres-tx**: `BEGIN`/`COMMIT` on their connection), and in "
    "autocommit (the plain names), where on a SQLite WAL file every statement takes and "
    "drops a read snapshot. The tables' first part, the plots and the targets use the "
    "in-transaction figures (the tables name a library, the figure is its `-tx` variant on "
    "the read rows); the second table keeps the autocommit reads (sqlx-pool1 only has "
    "those).\n"
    "- Writes: persist's (`insert_N`, `uow_*`, `single_inserts_10000`) open a session per "
    "iteration, so they include BEGIN and COMMIT; sqlx, Diesel, SeaORM, rusqlite and "
    "tokio-postgres run `insert_N` as one autocommitted statement, next to which "
    "persist-autocommit shows persist's one-statement floor.\n"
    "- persist adds `ORDER BY users.id, posts.id` to the join when no order is given, and its "
    "loader orders each level by key (the others send no ORDER BY); that is part of what "
    "persist costs here.\n"
    "- Backends: `sqlite` one WAL file (`journal_mode=WAL`, `synchronous=NORMAL`) per run, "
    "every contender connected to it; `sqlite_memory` one named in-memory database per run "
    "(`file:<name>?mode=memory&cache=shared`; sqlx and persist open it as "
    "`sqlite:file:<name>?mode=memory&cache=shared`, rusqlite and Diesel as the same URI), "
    "every contender connected to it through SQLite's shared cache, kept alive by the "
    "benchmark's own raw connection; persist gives an in-memory URL a pool of one "
    "connection, so every session of its `Db` sees that one database; `postgres` a schema "
    "of its own on 127.0.0.1:5432 (`?options=-c search_path=…`), created and dropped by the "
    "run. Tables are truncated and re-seeded before each read workload and size, truncated "
    "before each insert workload (inserts then accumulate during the measurement, as in "
    "diesel_bench) and before each contender of the 10,000-row writes.\n"
    "- One current-thread tokio runtime for every async contender; one connection each (a "
    "pool of one where a library wants a pool); each contender's result (row counts, the "
    "tree's shape, keys, no SQL on an identity-map or L2 hit) is asserted once outside the "
    "timed loop.\n"
    "- Criterion 0.7, `--warm-up-time 0.5 --measurement-time 2 --nresamples 10000` (so that "
    "the whole suite, cache bench included, runs in about 20 minutes), sample sizes 50 (10 for the "
    "10,000-row writes and `uow_update_1000`, 20 for 10,000-row reads, 1,000-row inserts and "
    "associations, 100 for the identity-map and L2 hits); the figure is criterion's "
    "**median** per iteration. One run, process pinned to CPU 0 (`taskset -c 0`).\n"
)
v = versions()
md.append("## Machine\n")
md.append(
    f"- CPU: {cpu()}, {os.cpu_count()} vCPUs shared (a VM), kernel {platform.release()}; "
    f"{pg_version()} on 127.0.0.1; {cmd(['rustc', '--version'])}.\n"
    "- Crates (bench/Cargo.lock): " + ", ".join(f"{k} {val}" for k, val in v.items())
    + " (one `libsqlite3-sys` linked by sqlx, Diesel and rusqlite).\n"
    "- Absolute times drift on a shared 2-core machine; compare the ratios of one run.\n"
)

def table(b, ws, cs, figure, q):
    """A Markdown table: one row per workload of `ws` with a figure, one column per
    library of `cs`; each cell the figure and, in brackets, its ratio `q`."""
    ws = [w for w in ws if any(figure(b, w, c) is not None for c in cs)]
    cs = [c for c in cs if any(figure(b, w, c) is not None for w in ws)]
    out = ["| workload | " + " | ".join(cs) + " |", "|---|" + "---|" * len(cs)]
    for w in ws:
        cells = []
        for c in cs:
            r = figure(b, w, c)
            r_q = q(b, w, c)
            cells.append("" if r is None else fmt(r) + ("" if r_q is None else f" ({fmt_ratio(r_q)})"))
        out.append(f"| {w} | " + " | ".join(cells) + " |")
    return out + [""]


for b in BACKENDS:
    cs = present(b)
    if not cs:
        continue
    md.append(f"## {TITLES[b]}\n")
    md.append("Median time per iteration; in brackets the ratio to raw sqlx "
              "(`find_by_key_identity_map` and `find_by_key_l2` are compared with sqlx's "
              "`find_by_key`, `uow_insert_10000` with sqlx's `multi_insert_10000`). "
              "persist's reads run inside one session held across the measurement, and so do "
              "the others' here: on the read rows (" + ", ".join(f"`{w}`" for w in READS[:8])
              + ") every library's figure, raw sqlx's included, is its in-transaction variant "
              "(`sqlx-tx`, `diesel-tx`, …).\n")
    if b in plots:
        md.append(f"![{TITLES[b]}: ratio to raw sqlx]({plots[b]})\n")
    md.extend(table(b, WORKLOADS, cs, pick, ratio))
    md.append(f"Reads in autocommit on {TITLES[b]}: the plain contenders, each statement "
              "by itself; in brackets the ratio to raw sqlx in autocommit (persist's figures "
              "are the same session's as above).\n")
    md.extend(table(b, READS[:8], AUTOCOMMIT, med, ratio_autocommit))


# ----- targets ---------------------------------------------------------------------
tg = []
SQLITES = ["sqlite", "sqlite_memory"]


def vs(b, w, c="sqlx"):
    """How a library's figure on `w` is named in a target: `sqlx-tx` or `sqlx`."""
    return like(b, REFERENCE.get(w, w), c)


# 1. persist within 1.10× of raw sqlx (in-transaction where measured).
for b in BACKENDS:
    for w in WORKLOADS:
        if w in ("uow_update_1000", "uow_insert_10000", "multi_insert_10000",
                 "find_by_key_identity_map", "find_by_key_l2"):
            continue  # their own targets and reference rows below
        q = ratio(b, w, "persist")
        if q is not None:
            tg.append((f"persist ÷ raw {vs(b, w)} ≤ 1.10 — {b} {w}", fmt_ratio(q), q <= 1.10))
    q = ratio(b, "insert_1", "persist-autocommit")
    if q is not None:
        tg.append((f"(for reference) persist-autocommit ÷ raw sqlx, both one autocommitted "
                   f"statement — {b} insert_1", fmt_ratio(q), None))
# 2. the unit of work's 1,000 updates ≥ 5× faster than raw sqlx's 1,000 single
#    UPDATEs on PostgreSQL, ≥ 2× on SQLite.
for b in BACKENDS:
    u, r = med(b, "uow_update_1000", "persist-uow"), med(b, "uow_update_1000", "sqlx")
    if u and r:
        goal = 5 if b == "postgres" else 2
        tg.append((f"uow_update_1000 persist-uow ≥ {goal}× faster than raw sqlx's single "
                   f"UPDATEs — {b}", f"{r / u:.2f}× ({fmt(r)} ÷ {fmt(u)})", r / u >= goal))
# 3. unit of work ≥ 10× faster than persist's awaited single inserts (PostgreSQL).
for b in BACKENDS:
    u, s = med(b, "uow_insert_10000", "persist-uow"), med(b, "single_inserts_10000", "persist")
    if u and s:
        pg = b == "postgres"
        tg.append((f"uow_insert_10000 ≥ 10× faster than persist's single_inserts_10000 — {b}"
                   + ("" if pg else " (for reference; the target is PostgreSQL's)"),
                   f"{s / u:.2f}× ({fmt(s)} ÷ {fmt(u)})", (s / u >= 10) if pg else None))
# 4. unit of work within 1.2× of raw sqlx's multi-row insert.
for b in BACKENDS:
    q = ratio(b, "uow_insert_10000", "persist-uow")
    if q is not None:
        tg.append((f"uow_insert_10000 ÷ sqlx multi_insert_10000 ≤ 1.2 — {b}", fmt_ratio(q), q <= 1.2))
# 5. identity-map hit ≥ 100× faster than raw sqlx's point lookup on SQLite.
for b in BACKENDS:
    hit, look = med(b, "find_by_key_identity_map", "persist"), ref(b, "find_by_key_identity_map")
    if hit and look:
        lite = b in SQLITES
        tg.append((f"find_by_key_identity_map ≥ 100× faster than {vs(b, 'find_by_key')} "
                   f"find_by_key — {b}" + ("" if lite else " (for reference; the target is SQLite's)"),
                   f"{look / hit:.0f}× ({fmt(hit)} vs {fmt(look)})",
                   (look / hit >= 100) if lite else None))
for b in BACKENDS:
    hit, look = med(b, "find_by_key_l2", "persist"), ref(b, "find_by_key_l2")
    if hit and look:
        tg.append((f"(for reference) find_by_key_l2 vs {vs(b, 'find_by_key')} find_by_key — {b}",
                   f"{look / hit:.0f}× faster ({fmt(hit)} vs {fmt(look)})", None))
# 6. persist faster than SeaORM (in-transaction where measured) on every workload.
for b in BACKENDS:
    lost, n = [], 0
    for w in WORKLOADS:
        s = pick(b, w, "sea-orm")
        p = med(b, w, "persist-uow" if w.startswith("uow_") else "persist")
        if p and s:
            n += 1
            if p >= s:
                lost.append(f"{w} {p / s:.2f}× {like(b, w, 'sea-orm')}")
    if n:
        tg.append((f"persist faster than sea-orm (sea-orm-tx on the reads) on every workload — {b}",
                   f"faster on all {n}" if not lost else "slower on " + ", ".join(lost), not lost))
# 7. SQLite: within 1.25× of rusqlite in one transaction.
for b in SQLITES:
    for w in ["trivial_10000", "medium_10000", "find_by_key"]:
        p, r = med(b, w, "persist"), pick(b, w, "rusqlite")
        if p and r:
            tg.append((f"persist ÷ {like(b, w, 'rusqlite')} ≤ 1.25 — {b} {w}", fmt_ratio(p / r),
                       p / r <= 1.25))


# 8. No read workload slower than the committed run by more than 5% (persist's
#    own figures, against the previous BENCHMARKS.csv).
def previous_rows():
    text = None
    if arg("--previous"):
        try:
            text = pathlib.Path(arg("--previous")).read_text()
        except OSError:
            text = None
    else:
        r = subprocess.run(["git", "-C", str(ROOT), "show", "HEAD:BENCHMARKS.csv"],
                           capture_output=True, text=True)
        text = r.stdout if r.returncode == 0 else None
    out = {}
    for line in (text or "").splitlines()[1:]:
        parts = line.strip().split(",")
        if len(parts) == 4:
            try:
                out[tuple(parts[:3])] = float(parts[3])
            except ValueError:
                pass
    return out


prev = previous_rows()
changes = []  # (backend, workload, library, previous, now)
for b in BACKENDS:
    for w in READS:
        old, new = prev.get((b, w, "persist")), med(b, w, "persist")
        if old and new:
            changes.append((b, w, "persist", old, new))
for b in BACKENDS:
    mine = [x for x in changes if x[0] == b]
    if mine:
        slow = [f"{w} +{(new / old - 1) * 100:.0f}%" for _, w, _, old, new in mine
                if new > old * 1.05]
        tg.append((f"no read workload slower than the committed run by more than 5% — {b}",
                   f"none of {len(mine)}" if not slow else "slower: " + ", ".join(slow), not slow))

md.append("## Targets against this run\n")
md.append("Computed from the medians above; `—` marks a row shown for reference only.\n")
md.append("| target | measured | met |")
md.append("|---|---|---|")
for name, val, ok in tg:
    md.append(f"| {name} | {val} | {'—' if ok is None else ('yes' if ok else '**no**')} |")
met = [ok for _, _, ok in tg if ok is not None]
md.append("")
md.append(f"{sum(met)} of {len(met)} targets met.\n")
if changes:
    slower = [x for x in changes if x[4] > x[3] * 1.05]
    md.append("## Reads against the committed run\n")
    md.append(f"persist's {len(changes)} read figures of this run against the previous "
              "BENCHMARKS.csv " + (f"(`{arg('--previous')}`)" if arg("--previous")
                                   else "(`git show HEAD:BENCHMARKS.csv`)")
              + f": {len(changes) - len(slower)} within +5%, {len(slower)} slower by more"
              + ("." if not slower else " (below).")
              + " The two runs may differ in machine load: compare the ratios above before "
              "reading a regression into one figure.\n")
    if slower:
        md.append("| backend | workload | committed | now | change |")
        md.append("|---|---|---|---|---|")
        for b, w, _, old, new in slower:
            md.append(f"| {b} | {w} | {fmt(old)} | {fmt(new)} | {(new / old - 1) * 100:+.1f}% |")
        md.append("")
md.append("## Notes\n")
md.append(
    "- Fairness caveats: persist's reads run inside an open transaction (its session), and "
    "so do the `-tx` variants every ratio and target of the reads is taken against; the "
    "autocommit table shows what the others cost without one (on a SQLite WAL file an "
    "autocommit read takes and drops a read snapshot per statement, on PostgreSQL every "
    "statement is its own transaction). Each `-tx` transaction is begun before its "
    "contender's measurement and committed after it, so that no read transaction is open "
    "while the next contender runs or the next group seeds its tables. Writes are compared "
    "as each library issues them: the others' `insert_N` autocommitted, persist's in a "
    "session (`persist-autocommit` is the one-statement floor, `insert_1` on PostgreSQL). Diesel's "
    "SQLite batch insert with an `Option` column (`hair_color`, as in diesel_bench's "
    "`NewUser`) is sent row by row. On `sqlite_memory` every connection goes through "
    "SQLite's shared cache (table-level locks, one page cache), the same for every "
    "contender.\n"
    "- persist's inserts on SQLite's direct path go out as 50-row statements (its prepared "
    "statements last one transaction, and preparing a 1,000-row INSERT costs more than twenty "
    "50-row steps), so `insert_1000` is 20 statements there; on PostgreSQL it is one. Its "
    "`insert_N` and `single_inserts_10000` run in a session (`BEGIN` … `COMMIT`): on "
    "PostgreSQL two round trips more than an autocommitted statement, which is most of "
    "`insert_1`'s gap.\n"
    "- `persist-sqlx` appears only when the bench is built with the `sqlite-direct-toggle` "
    "feature (`bash bench/run.sh` turns it on).\n"
)
if arg("--note"):
    md.append("- " + arg("--note") + "\n")
# The web benchmarks (bench/web-bench) report from a run of their own; their
# section is kept, as written there, when the anchors' report is rewritten.
web = pathlib.Path(__file__).resolve().parent / "web-bench" / "FIGURES.md"
if web.exists():
    md.append(web.read_text())
# So are the history and interceptor figures (benches/audit.rs).
audit = pathlib.Path(__file__).resolve().parent / "persist-bench" / "AUDIT.md"
if audit.exists():
    md.append(audit.read_text())
(OUT / "BENCHMARKS.md").write_text("\n".join(md))
print(f"wrote {OUT / 'BENCHMARKS.md'}, {OUT / 'BENCHMARKS.csv'} and {len(plots)} plots "
      f"({len(rows)} figures)")
