"""Label suggestions against an oracle curator: one-key acceptance rate and calibration.

    python bench/suggest.py [--n 20000] [--classes 60] [--groups 200] [--ks 10,25,50]
                            [--preset default|hard]

A project is generated from bench/synth.py (n 512-d rows in `--classes` classes, written as an
embedding space the way `curator embed` writes one) and grouped by `Project.cluster`. A simulated
curator then works down the queue, always taking the first undecided group. The oracle's decision
for a group is its members' majority class (named "class-NNNN", added to the taxonomy the first
time it is needed), or noise when most members are junk. Before each decision the benchmark reads
`Project.suggestions()` (recomputed after every decision, as the app does) and records whether the
shown suggestion *is* the oracle's decision: then one key (Enter) would have been right.

Printed: for each K in --ks, the share of the next 50 decisions after the first K that are a right
one-key acceptance; and the calibration curve: the precision of suggestions by shown confidence.
No text tower here (a random model's zero-shot match means nothing): the k-NN vote alone.

    python bench/suggest.py --first-call --n 1000000 --groups 3000 --decided 300 \
                            [--compare /path/to/other/checkout]

The first call of a process instead: the project is built, `--decided` groups are decided by the
oracle (no suggestions read), then each checkout (this one, and `--compare`'s) times, in a fresh
process, its first `Project.suggestions()` (with no saved state, then again with the state the
previous process saved where the code saves one), a call with nothing changed, and the refresh
after one more decision (undone afterwards). Wall and CPU time of each, side by side; then,
for every run, how many of its first call's suggestions are the oracle's decision for their
group, how many carry the same label as the first checkout's fresh run, and the precision per
shown-confidence bin (so a faster build can be checked for the suggestions it makes).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.synth import DEFAULT_CACHE, make_synthetic  # noqa: E402 - after the path set-up

SPACE = "synthetic:suggest"
BINS = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0001)


def build_project(root: Path, X: np.ndarray, n_groups: int, index: bool = True) -> None:
    """Items, vectors and a clustering run, through the catalog's own write paths (and the
    search index, which suggestions do not use: `index=False` saves its ~15 min at 1M)."""
    import json
    import shutil

    from curator.catalog import utcnow
    from curator.embed import compact_space
    from curator.project import Project
    from curator.stores import ShardWriter, space_slug

    shutil.rmtree(root, ignore_errors=True)
    media = root.parent / f"{root.name}-media"
    media.mkdir(parents=True, exist_ok=True)
    with Project.create(root, [media]) as proj:
        cat = proj.catalog
        folder = Path("vectors") / space_slug(SPACE)
        now = utcnow()
        run_id = cat.start_run("embed", {"bench": "suggest"})
        with cat.write() as db:
            db.execute("INSERT INTO spaces (space, embedder, model, dim, modalities, preprocess, "
                       "options, folder, created_at) VALUES (?, 'classic', 'synthetic', ?, ?, "
                       "'', '{}', ?, ?)", [SPACE, X.shape[1], json.dumps(["image"]),
                                           str(folder), now])
        shard = ShardWriter(root / folder / "shards" / "bench-000", X.shape[1])
        row0 = shard.append(np.asarray(X, np.float32))
        shard.close()
        n = len(X)
        with cat.write() as db:
            db.conn.executemany(
                "INSERT INTO items (id, source_id, path, modality, format, size, mtime, mtime_ns,"
                " content_hash, width, height, status, first_seen, last_seen, version) VALUES "
                "(?, 1, ?, 'image', 'jpeg', 1000, 0, 0, ?, 64, 48, 'ok', ?, ?, 1)",
                ((i + 1, f"synthetic/{i:08d}.jpg", f"{i:032x}", now, now) for i in range(n)))
            db.conn.executemany(
                "INSERT INTO embeddings (item_id, space, shard, row, item_version, run_id, "
                "created_at) VALUES (?, ?, 'bench-000', ?, 1, ?, ?)",
                ((i + 1, SPACE, row0 + i, run_id, now) for i in range(n)))
        cat.end_run(run_id, "ok", {"embedded": n})
        compact_space(cat, SPACE)
        if index:
            proj.sync_indexes()
        proj.cluster(n_groups=n_groups, seed=0)


def oracle(proj, gid: int, y: np.ndarray) -> str | None:
    """The right decision for a group: its majority class name, or None for noise."""
    members = np.asarray(proj.group(gid).items) - 1
    classes = Counter(y[members].tolist())
    top, _ = classes.most_common(1)[0]
    return None if top < 0 else f"class-{top:04d}"


def simulate(proj, y: np.ndarray, max_decisions: int) -> list[dict]:
    records = []
    labels = {lab.name for lab in proj.labels()}
    for i in range(max_decisions):
        queue = proj.queue().groups
        if not queue:
            break
        gid = queue[0].group_id
        t, c = time.perf_counter(), time.process_time()
        shown = proj.suggestions().get(gid)
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
        truth = oracle(proj, gid, y)
        records.append({"i": i, "gid": gid, "truth": truth, "seconds": seconds, "cpu": cpu,
                        "label": shown.label if shown else None,
                        "confidence": shown.confidence if shown else None,
                        "right": bool(shown and truth and shown.label == truth)})
        oracle_decision(proj, gid, truth, labels)
    return records


def oracle_decision(proj, gid: int, truth, labels: set) -> None:
    """The oracle curator's decision on a group: its true label (added on first use), or noise."""
    if truth is None:
        proj.label_group(gid, action="noise")
        return
    if truth not in labels:
        proj.add_label(truth)
        labels.add(truth)
    proj.label_group(gid, truth)


def report(records: list[dict], ks: list[int], window: int = 50) -> None:
    print("| after K decisions | next decisions | right one-key acceptances | share |")
    print("|---:|---:|---:|---:|")
    for k in ks:
        part = [r for r in records if k <= r["i"] < k + window]
        if part:
            right = sum(r["right"] for r in part)
            print(f"| {k} | {len(part)} | {right} | {right / len(part):.2f} |")
    shown = [r for r in records if r["confidence"] is not None and r["i"] >= min(ks)]
    print(f"\ncalibration over decisions after the first {min(ks)} ({len(shown)} suggestions "
          "shown):\n")
    print("| shown confidence | suggestions | mean confidence | precision |")
    print("|---|---:|---:|---:|")
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        part = [r for r in shown if lo <= r["confidence"] < hi]
        if part:
            conf = np.mean([r["confidence"] for r in part])
            prec = np.mean([r["right"] for r in part])
            print(f"| {lo:.2f}–{min(hi, 1.0):.2f} | {len(part)} | {conf:.2f} | {prec:.2f} |")
    # The first call after the first decision builds the warm state; later ones refresh it.
    secs = [(r["seconds"], r["cpu"]) for r in records[2:]]
    if len(records) > 2:
        wall, cpu = np.median(np.array(secs), axis=0)
        print(f"\nrefreshing every group's suggestion after a decision: median {wall:.2f} s "
              f"wall, {cpu:.2f} s CPU (the first, which builds the warm state: "
              f"{records[1]['seconds']:.2f} s)")


FIRST_CALL = r"""
import json, shutil, sys, time
from pathlib import Path
from curator.project import Project
root, fresh, gid, label = Path(sys.argv[1]), sys.argv[2] == "fresh", int(sys.argv[3]), sys.argv[4]
if fresh:
    shutil.rmtree(root / "suggest", ignore_errors=True)
def timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, round(time.perf_counter() - t, 3), round(time.process_time() - c, 3)
t0 = time.perf_counter()
with Project.open(root) as proj:
    proj.set_annotator("oracle")
    out, first, first_cpu = timed(proj.suggestions)
    proj.__dict__.pop("_suggestions_memo", None)
    _, same, same_cpu = timed(proj.suggestions)
    proj.label_group(gid, label)
    _, after, after_cpu = timed(proj.suggestions)
    proj.undo()
print(json.dumps({"first": first, "first_cpu": first_cpu, "same": same, "same_cpu": same_cpu,
                  "after": after, "after_cpu": after_cpu, "shown": len(out),
                  "run": proj.current_run(None),
                  "suggested": sorted((g, s.label, s.confidence) for g, s in out.items())}))
"""


def decide(root: Path, y: np.ndarray, count: int) -> tuple[int, str]:
    """The oracle decides the first `count` groups of the queue (without reading suggestions);
    returns the next group and its right label (for a refresh after one more decision)."""
    from curator.project import Project

    with Project.open(root) as proj:
        proj.set_annotator("oracle")
        labels = {lab.name for lab in proj.labels()}
        done = proj.catalog.db.execute("SELECT COUNT(*) FROM groups WHERE status != 'undecided' "
                                       "AND state = 'active'").fetchone()[0]
        while True:
            gid = proj.queue().groups[0].group_id
            truth = oracle(proj, gid, y)
            if done >= count and truth is not None:
                if truth not in labels:
                    proj.add_label(truth)
                return gid, truth
            done += 1
            oracle_decision(proj, gid, truth, labels)


def first_calls(root: Path, y: np.ndarray, decided: int, checkouts: list[Path]) -> None:
    import json
    import os
    import subprocess

    gid, truth = decide(root, y, decided)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    rows, answers = [], {}
    for checkout in checkouts:  # each checkout's "saved" run right after its "fresh" one
        for kind in ("fresh", "saved"):
            env["PYTHONPATH"] = str(checkout)
            # cwd too: `python -c` puts the working folder ahead of PYTHONPATH.
            done = subprocess.run([sys.executable, "-c", FIRST_CALL, str(root), kind, str(gid),
                                   truth], capture_output=True, text=True, env=env, check=False,
                                  cwd=checkout)
            if done.returncode != 0:
                raise SystemExit(f"{checkout}: {done.stderr.strip()[-2000:]}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            answers[(kind, str(checkout))] = r.pop("suggested")
            rows.append((checkout, kind, r))
    print("| checkout | state on disk | suggestions | first call: wall / CPU | nothing changed |"
          " after one more decision |")
    print("|---|---|---:|---:|---:|---:|")
    for checkout, kind, r in rows:
        print(f"| {checkout} | {'none' if kind == 'fresh' else 'from the run before'} | "
              f"{r['shown']} | {r['first']:.2f} s / {r['first_cpu']:.2f} s | "
              f"{r['same']:.2f} s / {r['same_cpu']:.2f} s | "
              f"{r['after']:.2f} s / {r['after_cpu']:.2f} s |")
    same = len({json.dumps(a[:50]) for a in answers.values()}) == 1
    print(f"\nsame first 50 suggestions from every run: {same}")
    truth = _truths(root, rows[0][2]["run"], y)
    accuracy(answers, truth, answers[("fresh", str(checkouts[0]))])


def _truths(root: Path, run_id: int, y: np.ndarray) -> dict[int, str | None]:
    """The oracle's decision for every active group of the run (as `oracle`, in one pass)."""
    from curator.project import Project

    with Project.open(root) as proj:
        rows = np.array(proj.catalog.db.execute(
            "SELECT a.item_id, a.group_id FROM assignments a JOIN groups g ON g.run_id = "
            "a.run_id AND g.group_id = a.group_id WHERE a.run_id = ? AND g.state = 'active'",
            [run_id]).fetchall(), np.int64).reshape(-1, 2)
    cls = np.asarray(y)[rows[:, 0] - 1].astype(np.int64) + 1  # junk (-1) counts as class 0
    gids, g = np.unique(rows[:, 1], return_inverse=True)
    n_cls = int(cls.max()) + 1
    counts = np.bincount(g * n_cls + cls, minlength=len(gids) * n_cls).reshape(len(gids), n_cls)
    # Ties go to the class met first in the group, as Counter.most_common does in `oracle`;
    # argmax takes the smallest class instead, which can differ only on exact ties.
    top = counts.argmax(axis=1) - 1
    return {int(gid): (None if c < 0 else f"class-{c:04d}") for gid, c in zip(gids, top)}


def accuracy(answers: dict, truth: dict[int, str | None], reference: list) -> None:
    """Per run: right suggestions against the oracle, agreement with the reference run
    (the first checkout's fresh build) and the precision by shown confidence."""
    ref = {g: lab for g, lab, _ in reference}
    print("\n| run | shown | right (share) | same label as the first fresh run |"
          + "".join(f" {lo:.2f}–{min(hi, 1.0):.2f}: n / precision |"
                    for lo, hi in zip(BINS[:-1], BINS[1:])))
    print("|---|---:|---:|---:|" + "---:|" * (len(BINS) - 1))
    for (kind, checkout), shown in answers.items():
        right = np.array([truth.get(g) == lab for g, lab, _ in shown], bool)
        conf = np.array([c for _, _, c in shown], np.float64)
        agree = sum(ref.get(g) == lab for g, lab, _ in shown)
        cells = []
        for lo, hi in zip(BINS[:-1], BINS[1:]):
            part = (conf >= lo) & (conf < hi)
            cells.append(f" {int(part.sum())} / {right[part].mean():.2f} |" if part.any()
                         else " 0 / – |")
        print(f"| {checkout} {kind} | {len(shown)} | {int(right.sum())} "
              f"({right.mean() if len(right) else 0:.3f}) | {agree} |" + "".join(cells))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--classes", type=int, default=60)
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--ks", default="10,25,50")
    ap.add_argument("--preset", default="default", help="bench/synth.py preset: default, hard")
    ap.add_argument("--decisions", type=int, default=None, help="stop after this many")
    ap.add_argument("--data", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--first-call", action="store_true",
                    help="time the first call of a fresh process instead (see above)")
    ap.add_argument("--decided", type=int, default=300, help="with --first-call")
    ap.add_argument("--compare", type=Path, action="append", default=[],
                    help="with --first-call: another checkout to time side by side")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    ks = [int(k) for k in args.ks.split(",")]

    X, y, _ = make_synthetic(args.n, n_classes=args.classes, spec=args.preset,
                             cache_dir=args.data)
    root = args.data / f"suggest-{args.preset}-{args.n}-{args.classes}-{args.groups}"
    t = time.perf_counter()
    if args.first_call and (root / "bench-ready").exists():
        print(f"project {root} (built before)")
        first_calls(root, np.asarray(y), args.decided, [ROOT, *args.compare])
        return 0
    build_project(root, X, args.groups, index=not args.first_call)
    if args.first_call:
        (root / "bench-ready").write_text("")
        first_calls(root, np.asarray(y), args.decided, [ROOT, *args.compare])
        return 0
    print(f"project ({args.preset} preset): {args.n} items, {args.classes} classes, "
          f"{args.groups} groups "
          f"({time.perf_counter() - t:.0f} s to build)\n")
    from curator.project import Project

    with Project.open(root) as proj:
        proj.set_annotator("oracle")
        records = simulate(proj, np.asarray(y), args.decisions or max(ks) + 50)
    report(records, ks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
