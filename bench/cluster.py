"""Clustering benchmark: our grouping engine against plain k-means and UMAP + HDBSCAN.

Usage (from the repository root):

    .venv/bin/python bench/cluster.py --sizes 50k --presets default,hard    # with the peer
    .venv/bin/python bench/cluster.py --sizes 1M --presets hard --no-peer --no-digits
    .venv/bin/python bench/cluster.py --quick                               # 20k, seconds
    .venv/bin/python bench/cluster.py --digits-sweep     # digits at each peer decision count

For each preset of bench/synth.py ("default": nearly separable; "hard": sibling families,
anisotropic sub-modes, Zipf sizes, outliers, label noise) and each size it makes (or re-opens
from --data-dir) a set with n/1000 classes and runs, side by side:

* the peer pipeline of BERTopic and Lilac, UMAP (15 neighbours, 5-d, cosine, min_dist 0) then
  HDBSCAN (min_cluster_size 15), up to --peer-max rows; its noise label is one more decision;
* ours (`cluster_embeddings`, method "graph") and plain FAISS spherical k-means
  (method "kmeans") asked for the same number of decisions as the peer spent (0.003 n where
  the peer does not run);
* ours with the group count chosen from the data (n_groups None).

Every run is scored by ORACLE TRIAGE ACCURACY: each group (the noise label included) gets the
majority true class of its members, one decision per group, and we count the share of rows
labelled right. Wall and CPU time and the RSS high-water mark are reported. Last, the same on
real pixels: scikit-learn's 1,797 digits, raw 8 x 8 pixels, centred, unit rows, at the peer's
decision count and at 10, 15 and 20 groups.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `indexing` importable
    sys.path.insert(0, str(ROOT))

from bench.synth import DEFAULT_CACHE, make_synthetic, separability  # noqa: E402
from indexing.cluster import cluster_embeddings  # noqa: E402

log = logging.getLogger("bench.cluster")


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


# --------------------------------------------------------------------------------------------
# Runs


@dataclass
class Row:
    name: str
    method: str
    n: int
    d: int
    decisions: int
    t: Timed
    accuracy: float
    note: str = ""


def run_engine(name, X, y, n_groups, method, seed) -> Row:
    result, t = timed(cluster_embeddings, X, n_groups, method=method, seed=seed, n_repr=4)
    acc, decisions = oracle_accuracy(result.labels, y)
    low = int(np.sum(result.low_density))
    note = f"{result.n_groups} groups" + (f", {low} of them low-density" if low else "")
    if result.params.get("micro_clusters"):
        note += f", {result.params['micro_clusters']:,} micro-clusters"
    label = method + (" (auto count)" if n_groups is None else "")
    return Row(name, label, X.shape[0], X.shape[1], decisions, t, acc, note)


def run_peer(name, X, y, seed) -> Row:
    """UMAP(15 neighbours, 5-d, min_dist 0, cosine) + HDBSCAN(min_cluster_size 15)."""
    import hdbscan
    import umap

    def pipeline(X):
        # No random_state: a fixed one makes UMAP single-threaded; the peer gets both cores.
        emb = umap.UMAP(
            n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine"
        ).fit_transform(np.asarray(X, dtype=np.float32))
        return hdbscan.HDBSCAN(min_cluster_size=15).fit_predict(emb)

    labels, t = timed(pipeline, X)
    acc, decisions = oracle_accuracy(labels, y)
    note = f"{int(labels.max()) + 1} groups + noise ({float(np.mean(labels < 0)):.1%} of rows)"
    return Row(name, "UMAP+HDBSCAN", X.shape[0], X.shape[1], decisions, t, acc, note)


def compare(name, X, y, seed, with_peer, groups) -> list[Row]:
    """The peer (optional), then ours and k-means at its decisions, then ours with auto count."""
    rows = []
    if with_peer:
        print(f"[{name}] UMAP + HDBSCAN ...", flush=True)
        rows.append(run_peer(name, X, y, seed))
        groups = rows[0].decisions
        print(table(rows[-1:]), flush=True)
    for method in ("graph", "kmeans"):
        print(f"[{name}] {method} into {groups:,} groups ...", flush=True)
        rows.append(run_engine(name, X, y, groups, method, seed))
        print(table(rows[-1:]), flush=True)
    print(f"[{name}] graph, automatic group count ...", flush=True)
    rows.append(run_engine(name, X, y, None, "graph", seed))
    print(table(rows[-1:]), flush=True)
    return rows


def digits_set():
    """scikit-learn's digits as raw 8 x 8 pixels, centred, unit rows; labels 0-9."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = digits.data.astype(np.float32)
    X -= X.mean(axis=0)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, digits.target.astype(np.int32)


def digits_check(seed: int, with_peer: bool, group_counts=(10, 15, 20)) -> list[Row]:
    X, y = digits_set()
    name = "digits (raw pixels)"
    rows = compare(name, X, y, seed, with_peer, 12)
    for g in group_counts:
        for method in ("graph", "kmeans"):
            rows.append(run_engine(name, X, y, g, method, seed))
    print(table(rows[-2 * len(group_counts) :]), flush=True)
    return rows


def digits_sweep(seed: int, sizes=(5, 8, 10, 12, 15, 20, 25, 30, 40, 60)) -> list[Row]:
    """Digits at every decision count the peer reaches: one UMAP embedding, HDBSCAN at several
    min_cluster_size values (its decision count moves with it), ours and k-means at each count.

    The UMAP time is counted once, in the first peer row; the other peer rows time HDBSCAN only.
    """
    import hdbscan
    import umap

    X, y = digits_set()
    name = "digits (raw pixels)"
    emb, t_umap = timed(lambda: umap.UMAP(n_neighbors=15, n_components=5, min_dist=0.0,
                                          metric="cosine").fit_transform(X))
    rows, seen = [], set()
    for mcs in sizes:
        labels, t = timed(hdbscan.HDBSCAN(min_cluster_size=mcs).fit_predict, emb)
        acc, decisions = oracle_accuracy(labels, y)
        if decisions in seen:
            continue
        seen.add(decisions)
        if not rows:
            t.wall, t.cpu = t.wall + t_umap.wall, t.cpu + t_umap.cpu
        note = (f"min_cluster_size {mcs}: {int(labels.max()) + 1} groups + noise "
                f"({float(np.mean(labels < 0)):.1%} of rows)")
        rows.append(Row(name, "UMAP+HDBSCAN", X.shape[0], X.shape[1], decisions, t, acc, note))
        for method in ("graph", "kmeans"):
            rows.append(run_engine(name, X, y, decisions, method, seed))
        print(table(rows[-3:]), flush=True)
    return rows


# --------------------------------------------------------------------------------------------
# Report


def _gb(b: int) -> str:
    return f"{b / 1e9:.2f}"


def table(rows: list[Row]) -> str:
    head = (
        "| set | n × d | method | decisions | oracle acc | wall s | CPU s | peak RSS GB | notes |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.n:,} × {r.d} | {r.method} | {r.decisions:,} | {r.accuracy:.4f} | "
            f"{r.t.wall:.1f} | {r.t.cpu:.1f} | {_gb(r.t.peak_rss)} | {r.note} |"
        )
    return "\n".join(lines)


def verdicts(rows: list[Row]) -> list[str]:
    """One line per comparison: ours against k-means and the peer at equal decisions."""
    out = []
    by_set: dict = {}
    for r in rows:
        by_set.setdefault((r.name, r.n), []).append(r)
    for (name, n), rs in by_set.items():
        for ours in (r for r in rs if r.method == "graph"):
            km = [r for r in rs if r.method == "kmeans" and r.decisions == ours.decisions]
            peer = [r for r in rs if r.method == "UMAP+HDBSCAN" and r.decisions == ours.decisions]
            parts = [f"{name}, {n:,} rows, {ours.decisions} decisions: ours {ours.accuracy:.4f}"]
            if km:
                parts.append(
                    f"k-means {km[0].accuracy:.4f} ({ours.accuracy - km[0].accuracy:+.4f})"
                )
            if peer:
                p = peer[0]
                parts.append(
                    f"UMAP+HDBSCAN {p.accuracy:.4f} ({ours.accuracy - p.accuracy:+.4f}); "
                    f"{p.t.wall / ours.t.wall:.1f}x faster wall, {p.t.cpu / ours.t.cpu:.1f}x CPU"
                )
            out.append("; ".join(parts))
    return out


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if text[-1:] in "km" else text) * mult)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="50k,1M", help="comma-separated sizes, e.g. 50k,1M")
    ap.add_argument("--presets", default="default,hard", help="bench/synth.py presets")
    ap.add_argument("--quick", action="store_true", help="20k rows, no peer: a check in seconds")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--data-dir",
        default=str(DEFAULT_CACHE),
        help="cache for the synthetic sets (git-ignored); '' to not cache",
    )
    ap.add_argument("--peer-max", default="50k", help="largest size the peer runs at")
    ap.add_argument("--no-peer", action="store_true", help="skip UMAP + HDBSCAN")
    ap.add_argument("--groups", type=int, default=0,
                    help="groups for ours and k-means without the peer (default 0.3%% of "
                         "rows); the peer's count from an earlier run compares at equal "
                         "decisions without rerunning it")
    ap.add_argument("--no-digits", action="store_true", help="skip scikit-learn digits")
    ap.add_argument("--markdown", help="also write the tables to this file")
    ap.add_argument("--digits-sweep", action="store_true",
                    help="digits only: the peer at several min_cluster_size values, ours and "
                         "k-means at each of its decision counts")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    sizes = [20_000] if args.quick else [parse_size(s) for s in args.sizes.split(",") if s]
    peer_max = 0 if (args.no_peer or args.quick) else parse_size(args.peer_max)
    cache = args.data_dir or None
    load = os.getloadavg()[0]
    rows: list[Row] = []
    if args.digits_sweep:
        sizes, args.no_digits = [], True
        rows += digits_sweep(args.seed)
    for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
        for n in sizes:
            n_classes = max(10, n // 1000)
            X, y, _ = make_synthetic(
                n, args.dim, n_classes, args.seed, spec=preset, cache_dir=cache
            )
            sep = separability(X, y, seed=args.seed)
            name = f"{preset}, {n_classes} classes"
            print(
                f"[{name}, {n:,} rows] nearest-class-mean accuracy {sep['ncm_accuracy']:.4f}, "
                f"1-NN {sep['nn1_accuracy']:.4f}",
                flush=True,
            )
            groups = args.groups or max(10, round(0.003 * n))
            rows += compare(name, X, y, args.seed, n <= peer_max, groups)
            del X
            load = max(load, os.getloadavg()[0])
    if not args.no_digits:
        rows += digits_check(args.seed, with_peer=not (args.no_peer or args.quick))
    load = max(load, os.getloadavg()[0])
    out = [
        table(rows),
        "",
        *[f"- {v}" for v in verdicts(rows)],
        "",
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
