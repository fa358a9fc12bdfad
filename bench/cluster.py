"""Clustering benchmark: time, memory and oracle triage accuracy of `indexing.cluster`.

Usage (from the repository root):

    .venv/bin/python bench/cluster.py --sizes 100k,1M          # the full run (minutes)
    .venv/bin/python bench/cluster.py --quick                  # 20k rows, a quick check
    .venv/bin/python bench/cluster.py --sizes 100k --markdown out.md

For each size it generates (or re-opens from --data-dir) a synthetic set from bench/synth.py with
n/1000 classes, clusters it into 0.003 n groups and reports wall and CPU time, the RSS high-water
mark during clustering, ARI and NMI against the true classes, and ORACLE TRIAGE ACCURACY: every
group gets the majority true class of its members (one decision per group) and we count the
share of rows labelled correctly. Then the most impure groups are split in two with
`split_group` (each split costs one more decision; halves re-enter the queue with their own
impurity) and the curve decisions -> accuracy is printed.

On the smallest size from 20k to 200k (100k in the full run) it also times the peer pipeline
BERTopic and Lilac use, UMAP to 5-d then HDBSCAN (min_cluster_size 10), scored the same way (its
noise is one more group), and runs ours at the same number of decisions. Last, a real-data
check: the 1,797 scikit-learn digits written as PNG files, embedded by the `classic` embedder
through its decoder, clustered and scored (skipped with a message if `classic` is not available).
"""

from __future__ import annotations

import argparse
import heapq
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `indexing` importable
    sys.path.insert(0, str(ROOT))

from bench.synth import DEFAULT_CACHE, make_synthetic  # noqa: E402 (after the path fix)
from indexing.cluster import (  # noqa: E402 (after the path fix)
    cluster_embeddings,
    group_statistics,
    split_group,
)

log = logging.getLogger("bench.cluster")

TARGET_ACCURACY = 0.97


# --------------------------------------------------------------------------------------------
# Measuring


class PeakRSS:
    """Samples this process's resident set size every 20 ms; `peak` is the high-water mark."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


@dataclass
class Timed:
    wall: float = 0.0
    cpu: float = 0.0
    peak_rss: int = 0
    before_rss: int = 0


def timed(fn, *args, **kwargs):
    """Run fn, returning (result, Timed) with wall time, process CPU time and peak RSS."""
    t = Timed()
    t.before_rss = PeakRSS.rss()
    with PeakRSS() as mem:
        w, c = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        t.wall, t.cpu = time.perf_counter() - w, time.process_time() - c
    t.peak_rss = mem.peak
    return out, t


# --------------------------------------------------------------------------------------------
# Scoring


def _majority_count(y: np.ndarray) -> int:
    return int(np.bincount(y + 1).max()) if y.size else 0  # +1: junk rows are class -1


def oracle_accuracy(labels: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """(share of rows right when each group takes its majority class, decisions spent).

    Noise rows (label -1) form one more group: a person sees them as one bucket.
    """
    lab = labels.astype(np.int64) + 1
    yy = y.astype(np.int64) + 1
    # Count (group, class) pairs without a dense G x C matrix.
    pair = lab * (int(yy.max()) + 1) + yy
    uniq, counts = np.unique(pair, return_counts=True)
    group = uniq // (int(yy.max()) + 1)
    best = np.zeros(int(lab.max()) + 1, dtype=np.int64)
    np.maximum.at(best, group, counts)
    decisions = int(np.unique(lab).size)
    return float(best.sum() / y.size), decisions


@dataclass
class Curve:
    points: list = field(default_factory=list)  # (decisions, accuracy)

    def at(self, decisions: int) -> float:
        """Accuracy reached with at most `decisions` decisions."""
        best = None
        for d, a in self.points:
            if d <= decisions:
                best = a
        return best if best is not None else float("nan")

    def decisions_for(self, accuracy: float):
        for d, a in self.points:
            if a >= accuracy:
                return d
        return None


def oracle_curve(X, y, labels, impurity, max_splits: int, seed: int = 0) -> Curve:
    """Split the most impure groups in two, one decision each, and track oracle accuracy.

    A priority queue holds groups by impurity; the top group is split with `split_group`, its
    halves get their own impurity (`group_statistics` on the group's rows) and go back in the
    queue, as a person splitting doubtful groups one after another would do.
    """
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    cuts = np.flatnonzero(np.diff(sorted_labels)) + 1
    members = {
        int(sorted_labels[s]): order[s:e] for s, e in zip(np.r_[0, cuts], np.r_[cuts, labels.size])
    }
    n = y.size
    correct = sum(_majority_count(y[idx]) for idx in members.values())
    decisions = len(members)
    curve = Curve([(decisions, correct / n)])
    heap = [(-float(impurity[g]), g) for g in members if g >= 0]
    heapq.heapify(heap)
    next_id = max(members) + 1
    splits = 0
    every = max(1, max_splits // 100)  # about 100 points on the curve
    while heap and splits < max_splits:
        _, g = heapq.heappop(heap)
        idx = members[g]
        if idx.size < 4:
            continue
        rows = np.asarray(X[idx], dtype=np.float32)
        sub = split_group(rows, 2, seed=seed)
        k = int(sub.max()) + 1
        if k < 2:
            continue
        del members[g]
        sums = np.zeros((k, rows.shape[1]), np.float64)
        np.add.at(sums, sub, rows / np.linalg.norm(rows, axis=1, keepdims=True))
        imp = group_statistics(rows, sub, sums.astype(np.float32), n_repr=0, seed=seed).impurity
        correct -= _majority_count(y[idx])
        for j in range(k):
            child = idx[sub == j]
            correct += _majority_count(y[child])
            members[next_id] = child
            heapq.heappush(heap, (-float(imp[j]), next_id))
            next_id += 1
        decisions += k - 1
        splits += 1
        if splits % every == 0:
            curve.points.append((decisions, correct / n))
    if not curve.points or curve.points[-1][0] != decisions:
        curve.points.append((decisions, correct / n))
    return curve


def scores(labels, y):
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return adjusted_rand_score(y, labels), normalized_mutual_info_score(y, labels)


# --------------------------------------------------------------------------------------------
# Runs


@dataclass
class Row:
    name: str
    n: int
    d: int
    groups: int
    decisions: int
    t: Timed
    ari: float
    nmi: float
    accuracy: float
    curve: Curve = None
    note: str = ""


def run_ours(name, X, y, n_groups, seed, split_budget, progress=None) -> Row:
    result, t = timed(cluster_embeddings, X, n_groups, seed=seed, progress=progress)
    ari, nmi = scores(result.labels, y)
    acc, decisions = oracle_accuracy(result.labels, y)
    curve = None
    if split_budget:
        curve = oracle_curve(X, y, result.labels, result.stats.impurity, split_budget, seed)
    timings = result.params["timings"]
    note = ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if k != "total")
    return Row(
        name, X.shape[0], X.shape[1], result.n_groups, decisions, t, ari, nmi, acc, curve, note
    )


def run_peer(name, X, y, seed) -> Row:
    """BERTopic's default pipeline: UMAP(15 neighbours, 5-d, min_dist 0, cosine) + HDBSCAN(10)."""
    import hdbscan
    import umap

    def pipeline(X):
        emb = umap.UMAP(
            n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine"
        ).fit_transform(np.asarray(X, dtype=np.float32))
        return hdbscan.HDBSCAN(
            min_cluster_size=10, metric="euclidean", cluster_selection_method="eom"
        ).fit_predict(emb)

    labels, t = timed(pipeline, X)
    ari, nmi = scores(labels, y)
    acc, decisions = oracle_accuracy(labels, y)
    noise = float(np.mean(labels < 0))
    return Row(
        name,
        X.shape[0],
        X.shape[1],
        int(labels.max()) + 1,
        decisions,
        t,
        ari,
        nmi,
        acc,
        None,
        f"noise {noise:.1%} (one more decision)",
    )


def digits_check(seed: int, group_counts=(10, 30, 60)) -> list[Row]:
    """scikit-learn's 1,797 digits as 64 px PNG files, through the classic embedder."""
    try:
        from indexing.embedders import create_embedder

        embedder = create_embedder("classic")
    except (ImportError, KeyError, RuntimeError) as exc:
        print(f"digits check skipped: the classic embedder is not available ({exc})")
        return []
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    decode = embedder.decoder()
    with tempfile.TemporaryDirectory(prefix="curator-digits-") as tmp:
        decoded = []
        for i, img in enumerate(digits.images):
            path = Path(tmp) / f"digit_{i:04d}.png"
            grey = (np.clip(img / 16.0, 0, 1) * 255).astype(np.uint8)
            Image.fromarray(grey).resize((64, 64), Image.BILINEAR).convert("RGB").save(path)
            decoded.append(decode(i, str(path), "image", False))
    bad = [d for d in decoded if d.error]
    if bad:
        print(f"digits check skipped: {len(bad)} PNG files failed to decode ({bad[0].error})")
        return []
    X = np.concatenate(
        [embedder.embed_batch(decoded[a : a + 256]).vectors for a in range(0, len(decoded), 256)]
    )
    y = digits.target.astype(np.int32)
    rows = []
    for g in group_counts:
        row = run_ours(f"digits (classic {X.shape[1]}-d)", X, y, g, seed, split_budget=60)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Report


def _gb(b: int) -> str:
    return f"{b / 1e9:.2f}"


def table(rows: list[Row], budget_extra: int) -> str:
    head = (
        "| set | n × d | groups | decisions | wall s | CPU s | peak RSS GB | ARI | NMI | "
        f"oracle acc | acc @ +{budget_extra} splits | decisions for {TARGET_ACCURACY} |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        plus = r.curve.at(r.decisions + budget_extra) if r.curve else float("nan")
        need = r.curve.decisions_for(TARGET_ACCURACY) if r.curve else None
        need_s = "n/a" if r.curve is None else (str(need) if need else "not reached")
        lines.append(
            f"| {r.name} | {r.n:,} × {r.d} | {r.groups:,} | {r.decisions:,} | {r.t.wall:.1f} | "
            f"{r.t.cpu:.1f} | {_gb(r.t.peak_rss)} | {r.ari:.3f} | {r.nmi:.3f} | {r.accuracy:.4f} | "
            f"{'' if np.isnan(plus) else f'{plus:.4f}'} | {need_s} |"
        )
    return "\n".join(lines)


def curve_table(rows: list[Row], marks=(0, 100, 250, 500, 1000)) -> str:
    lines = ["| set | " + " | ".join(f"+{m}" for m in marks) + " |", "|---|" + "---|" * len(marks)]
    for r in rows:
        if r.curve is None:
            continue
        cells = [f"{r.curve.at(r.decisions + m):.4f}" for m in marks]
        lines.append(f"| {r.name} ({r.decisions:,} groups) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if text[-1:] in "km" else text) * mult)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100k,1M", help="comma-separated sizes, e.g. 100k,1M")
    ap.add_argument("--quick", action="store_true", help="20k rows only: a check in seconds")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--data-dir",
        default=str(DEFAULT_CACHE),
        help="cache for the synthetic sets (git-ignored); '' to not cache",
    )
    ap.add_argument("--splits", type=int, default=500, help="split budget for the oracle curve")
    ap.add_argument("--no-peer", action="store_true", help="skip UMAP + HDBSCAN")
    ap.add_argument("--no-digits", action="store_true", help="skip the digits check")
    ap.add_argument("--markdown", help="also write the tables to this file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    sizes = [20_000] if args.quick else [parse_size(s) for s in args.sizes.split(",") if s]
    cache = args.data_dir or None
    rows: list[Row] = []
    peer_rows: list[Row] = []
    load = os.getloadavg()[0]
    peer_size = min((s for s in sizes if s >= 20_000), default=None)
    if peer_size is not None and peer_size > 200_000:
        peer_size = None  # UMAP + HDBSCAN beyond 200k takes too long on a laptop
    for n in sizes:
        n_classes = max(10, n // 1000)
        X, y, _ = make_synthetic(n, args.dim, n_classes, args.seed, cache_dir=cache)
        groups = max(10, round(0.003 * n))
        print(f"[{n:,} rows] clustering into {groups:,} groups ...", flush=True)
        row = run_ours(f"synthetic {n_classes} classes", X, y, groups, args.seed, args.splits)
        print(table([row], args.splits), flush=True)
        rows.append(row)
        if n == peer_size and not args.no_peer:
            print(f"[{n:,} rows] peer pipeline UMAP(5) + HDBSCAN ...", flush=True)
            peer = run_peer(f"peer UMAP+HDBSCAN, {n_classes} classes", X, y, args.seed)
            same = run_ours(
                f"ours at the peer's {peer.decisions:,} decisions",
                X,
                y,
                peer.decisions,
                args.seed,
                0,
            )
            peer_rows += [peer, same]
            print(table([peer, same], args.splits), flush=True)
            print(
                f"speed-up {peer.t.wall / same.t.wall:.1f}x wall, "
                f"{peer.t.cpu / same.t.cpu:.1f}x CPU; oracle accuracy "
                f"{same.accuracy:.4f} (ours) vs {peer.accuracy:.4f} (peer)",
                flush=True,
            )
        del X
    digit_rows = [] if args.no_digits else digits_check(args.seed)

    load = max(load, os.getloadavg()[0])
    out = [
        "### Synthetic sets",
        "",
        table(rows, args.splits),
        "",
        *[f"Stages of {r.name} (wall s): {r.note}." for r in rows],
        "",
        "Oracle curve: accuracy after N more decisions (splits of the most impure groups)",
        "",
        curve_table(rows),
        "",
    ]
    if peer_rows:
        peer, same = peer_rows
        out += [
            "### Peer pipeline (BERTopic / Lilac: UMAP 5-d + HDBSCAN)",
            "",
            table(peer_rows, args.splits),
            "",
            (
                f"Peer: {peer.note}. Speed-up at equal decisions: "
                f"{peer.t.wall / same.t.wall:.1f}x wall, {peer.t.cpu / same.t.cpu:.1f}x CPU."
            ),
            "",
        ]
    if digit_rows:
        out += [
            "### Real data: scikit-learn digits through the classic embedder",
            "",
            table(digit_rows, 30),
            "",
            curve_table(digit_rows, marks=(0, 10, 30, 60)),
            "",
        ]
    out += [
        (
            f"Load average during the run: up to {load:.1f} on {os.cpu_count()} cores "
            "(above 2 means the machine was shared and wall times are inflated)."
        ),
        "",
    ]
    text = "\n".join(out)
    print()
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
