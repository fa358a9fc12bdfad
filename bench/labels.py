"""Labels and export benchmark on a generated catalog: label, undo, the queue and exports.

    python bench/labels.py [--items 1000000] [--groups 5000] [--labels 50] [--repeat 5] [--keep DIR]
                           [--formats jsonl,parquet,csv,imagefolder] [--wds-files 1000]
                           [--wds-size 1000000]

Each export runs in a child process of its own, so its peak memory (max RSS) is its own. The
imagefolder export runs in symlink mode over empty media files made for it; the WebDataset export
runs on a second small catalog whose --wds-files media files hold --wds-size random bytes each,
and reports the media bytes copied per second.

The catalog is generated directly (items, one embedding space, a clustering run with its groups
and assignments) with executemany, so no media exist on disk: the jsonl and parquet exports write
one row per item and never open a media file. About 40% of the items carry a label before the
timings start (bulk imported events, plus 500 groups labelled one by one), so the label, undo and
queue timings run against a realistically full history.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curator.catalog import utcnow  # noqa: E402 (after the path insert)
from curator.project import Project  # noqa: E402

BIG_GROUP = 10_000
SPACE = "classic:v1"
TARGETS = {"label 10,000-item group": 0.100, "undo that label": 0.100,
           "queue of all groups": 0.200, "export jsonl": 60.0, "export parquet": 30.0,
           "tally a new run (once)": 1.0, "derived status, all groups": 1.0,
           "change poll, nothing new": 0.005, "change poll after a write": 0.005,
           "export csv": 60.0, "export imagefolder": 300.0}
WDS_MB_PER_S = 150.0


def materialise(project: Project, size: int, seed: int = 0) -> int:
    """Write a media file for every item of the catalog (empty, or `size` random bytes)."""
    root = Path(project.sources()[0].root)
    payload = np.random.default_rng(seed).bytes(size) if size else b""
    n = 0
    made: set[Path] = set()
    for (rel,) in project.catalog.db.execute("SELECT path FROM items ORDER BY id"):
        path = root / rel
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        with open(path, "wb") as fh:
            fh.write(payload)
        n += 1
    if size:
        with project.catalog.write() as db:
            db.execute("UPDATE items SET size = ?", [size])
    return n


def export_in_child(project_root: Path, fmt: str, out: Path, mode: str) -> dict[str, float]:
    """One export in a fresh process; its wall time, items and peak RSS (MB)."""
    import subprocess

    root = str(Path(__file__).resolve().parents[1])
    code = (f"import json, sys; sys.path.insert(0, {root!r}); "
            "from curator.project import Project; "
            f"from curator.export import export; p = Project.open({str(project_root)!r}); "
            f"r = export(p, {fmt!r}, {str(out)!r}, mode={mode!r}, use_splits=False); "
            "print(json.dumps({'seconds': r.seconds, 'items': r.items}))")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"export {fmt} failed ({child.returncode})")
    found = json.loads(output.strip().splitlines()[-1])
    found["peak_mb"] = usage.ru_maxrss / 1024
    found["cpu"] = usage.ru_utime + usage.ru_stime  # the child's, start-up included
    return found


def generate(root: Path, n_items: int, n_groups: int, n_labels: int, seed: int = 0) -> Project:
    """A project whose catalog holds n_items ok images in one space, clustered into n_groups."""
    rng = np.random.default_rng(seed)
    media = root / "media"
    media.mkdir(parents=True)
    project = Project.create(root / "project", [media])
    db = project.catalog.db
    now = utcnow()
    with project.catalog.write():
        db.conn.executemany(
            "INSERT INTO runs (id, kind, app_version, params, started_at, ended_at, status, "
            "counts) VALUES (?, ?, '0.1.0', ?, ?, ?, 'ok', '{}')",
            [(1, "scan", "{}", now, now), (2, "embed", json.dumps({"model": "classic"}), now, now),
             (3, "cluster", json.dumps({"n_groups": n_groups}), now, now)])
        db.execute("INSERT INTO spaces (space, embedder, model, dim, modalities, preprocess, "
                   "folder, created_at) VALUES (?, 'classic', 'v1', 256, '[\"image\"]', '', "
                   "'vectors/x', ?)", [SPACE, now])
        sizes = rng.integers(64, 4096, n_items)
        widths = rng.integers(32, 4000, n_items)
        chunk = 100_000
        for start in range(0, n_items, chunk):
            stop = min(start + chunk, n_items)
            db.conn.executemany(
                "INSERT INTO items (id, source_id, path, modality, format, size, mtime, mtime_ns,"
                " content_hash, width, height, status, first_seen, last_seen, version) VALUES "
                "(?, 1, ?, 'image', 'jpeg', ?, 0, 0, ?, ?, ?, 'ok', ?, ?, 1)",
                ((i + 1, f"set{i % 100:02d}/part{(i // 100) % 100:02d}/{i:07d}.jpg",
                  int(sizes[i]), hashlib.blake2b(i.to_bytes(8, "little"), digest_size=16)
                  .hexdigest(), int(widths[i]), int(widths[i]) * 3 // 4, now, now, )
                 for i in range(start, stop)))
            db.conn.executemany(
                "INSERT INTO embeddings (item_id, space, shard, row, item_version, run_id, "
                "created_at) VALUES (?, ?, 'shard', ?, 1, 2, ?)",
                ((i + 1, SPACE, i, now) for i in range(start, stop)))
        # Group 0 holds BIG_GROUP items; the rest share the others.
        big = min(BIG_GROUP, n_items // 2)  # small catalogs (the WebDataset run) too
        rest = rng.integers(1, n_groups, n_items - big)
        group_of = np.concatenate([np.zeros(big, np.int64), rest])
        rng.shuffle(group_of)
        counts = np.bincount(group_of, minlength=n_groups)
        db.conn.executemany(
            "INSERT INTO groups (run_id, group_id, space, size, cohesion, impurity, topic, "
            "representatives, boundary, state, created_at) VALUES (3, ?, ?, ?, ?, ?, ?, '[]', "
            "'[]', 'active', ?)",
            ((g, SPACE, int(counts[g]), float(rng.random()), float(rng.random()), g % 40, now)
             for g in range(n_groups)))
        db.conn.executemany("INSERT INTO assignments (run_id, item_id, group_id) VALUES (3, ?, ?)",
                            ((i + 1, int(g)) for i, g in enumerate(group_of)))
        db.execute("INSERT INTO clusterings (run_id, space, method, n_groups, group_offset, "
                   "params, created_at) VALUES (3, ?, 'kmeans', ?, 0, '{}', ?)",
                   [SPACE, n_groups, now])
    project.set_annotator("bench")
    parents = max(1, n_labels // 5)
    names = []
    for p in range(parents):
        project.add_label(f"kind{p:02d}")
        names.append(f"kind{p:02d}")
        for c in range(n_labels // parents - 1):
            project.add_label(f"kind{p:02d}-sub{c}", parent=f"kind{p:02d}")
            names.append(f"kind{p:02d}-sub{c}")
    # About 30% of the items imported in bulk (one event per label) ...
    order = rng.permutation(np.arange(1, n_items + 1))[: int(n_items * 0.3)]
    for k, part in enumerate(np.array_split(np.sort(order), len(names))):
        project.label_items(part.tolist(), names[k], source="imported")
    # ... and 500 groups decided one by one, as a reviewer would.
    for g in range(1, min(501, n_groups)):
        project.label_group(g, names[g % len(names)])
    return project


def _triage_timings(project: Project, runs: dict, clocked) -> None:
    """Derived group status (issue 11): the one-off tally of a new run, the status read after
    a label (catch-up included), and change detection as an open app polls it."""
    from curator.changes import ChangeFeed
    from curator.decisions import group_decisions
    from curator.tallies import tally_run

    catalog = project.catalog
    runs["tally a new run (once)"] = [clocked(lambda: tally_run(catalog, 3))]
    label = project.labels()[5].path
    for _ in range(3):
        project.label_group(1, label)
        runs.setdefault("derived status, all groups", []).append(
            clocked(lambda: group_decisions(catalog, 3)))
        project.undo()
    feed = ChangeFeed(catalog.path)
    feed.start()
    idle = [clocked(feed.poll) for _ in range(200)]
    runs["change poll, nothing new"] = idle
    after = []
    for _ in range(5):
        project.label_group(2, label)
        after.append(clocked(feed.poll))
        project.undo()
        feed.poll()
    runs["change poll after a write"] = after
    feed.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=5000)
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="keep the project here")
    parser.add_argument("--no-export", action="store_true", help="skip the export timings")
    parser.add_argument("--formats", default="jsonl,parquet,csv,imagefolder",
                        help="export formats to time (imagefolder: symlink mode)")
    parser.add_argument("--wds-files", type=int, default=1000,
                        help="media files of the WebDataset throughput run (0: skip it)")
    parser.add_argument("--wds-size", type=int, default=1_000_000, help="bytes per media file")
    args = parser.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="curator-bench-labels-"))
    results: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        if (base / "project" / "catalog.db").exists():
            project = Project.open(base / "project")
            project.set_annotator("bench")
        else:
            project = generate(base, args.items, args.groups, args.labels)
        print(f"catalog: {args.items} items, {args.groups} groups, {len(project.labels())} "
              f"labels ready in {time.perf_counter() - t0:.1f} s")
        label = project.labels()[3].path

        def clocked(fn) -> tuple[float, float]:
            # The caller's own CPU: work handed to a background thread (the checkpoint, the
            # event-log backup) is not what the user waits for.
            wall, cpu = time.perf_counter(), time.thread_time()
            fn()
            return time.perf_counter() - wall, time.thread_time() - cpu

        runs: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.repeat):
            runs.setdefault("label 10,000-item group", []).append(
                clocked(lambda: project.label_group(0, label)))
            runs.setdefault("undo that label", []).append(clocked(project.undo))
            runs.setdefault("queue of all groups", []).append(
                clocked(lambda: project.queue("impurity")))
        _triage_timings(project, runs, clocked)
        for name, pairs in runs.items():
            results[name] = statistics.median(p[0] for p in pairs)
            cpu_seconds[name] = statistics.median(p[1] for p in pairs)
        queue = project.queue("impurity")
        assert queue.groups_total == args.groups, queue.groups_total
        peaks: dict[str, float] = {}
        if not args.no_export:
            formats = [f for f in args.formats.split(",") if f]
            if "imagefolder" in formats:
                t1 = time.perf_counter()
                made = materialise(project, 0)
                print(f"{made} empty media files made in {time.perf_counter() - t1:.0f} s")
            project.close()
            for fmt in formats:
                out = base / f"export-{fmt}"
                mode = "symlink" if fmt == "imagefolder" else "copy"
                found = export_in_child(base / "project", fmt, out, mode)
                name = f"export {fmt}"
                results[name], peaks[name] = found["seconds"], found["peak_mb"]
                cpu_seconds[name] = found["cpu"]
                size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()
                           and not p.is_symlink())
                print(f"{fmt}: {found['items']} items in {found['seconds']:.1f} s "
                      f"({found['cpu']:.1f} s CPU), {size / 1e6:.0f} MB written, peak RSS "
                      f"{found['peak_mb']:.0f} MB", flush=True)
                shutil.rmtree(out, ignore_errors=True)
            project = Project.open(base / "project")
            if args.wds_files:
                wds = generate(base / "wds", args.wds_files, 10, 5, seed=1)
                materialise(wds, args.wds_size, seed=1)
                wds.close()
                found = export_in_child(base / "wds" / "project", "webdataset",
                                        base / "export-wds", "copy")
                rate = args.wds_files * args.wds_size / 1e6 / found["seconds"]
                print(f"webdataset: {args.wds_files} files of {args.wds_size / 1e6:g} MB in "
                      f"{found['seconds']:.1f} s = {rate:.0f} MB/s of media copied (target "
                      f">= {WDS_MB_PER_S:g}), peak RSS {found['peak_mb']:.0f} MB")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print()
        print(f"| {'operation':<26} | {'seconds':>9} | {'CPU s':>7} | {'peak MB':>7} | "
              f"{'target':>8} | ok  |")
        print(f"|{'-' * 28}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 10}|-----|")
        for name, seconds in results.items():
            target = TARGETS.get(name)
            if target is None:  # a format without a time target (webdataset: MB/s above)
                continue
            cpu = (f"{cpu_seconds[name]:.3f}" if seconds < 1 else f"{cpu_seconds[name]:.1f}") \
                if name in cpu_seconds else "-"
            peak = f"{peaks[name]:.0f}" if name in peaks else "-"
            print(f"| {name:<26} | {seconds:>9.3f} | {cpu:>7} | {peak:>7} | {target:>8.3f} | "
                  f"{'yes' if seconds <= target else 'NO':<3} |")
        ref = time.process_time()
        sum(range(10**7))
        ref = time.process_time() - ref
        load = os.getloadavg()
        print(f"\npeak RSS {rss:.0f} MB (includes the catalog's memory map); median of "
              f"{args.repeat} for label, undo and queue; {os.cpu_count()} cores, load average "
              f"{load[0]:.1f} at the end; reference: sum(range(10**7)) takes {ref:.2f} s CPU "
              "here")
        project.close()
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
