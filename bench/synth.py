"""Synthetic embedding sets with known classes, for measuring the grouping engine at up to 1M rows.

Construction (all directions are random Gaussian vectors in R^d scaled to norm ~1; rows are
L2-normalised at the end, as an embedder's output is):

* **Common direction.** Every row shares one component (weight `common`), so all cosines are
  positive and high, like CLIP vectors that live in a narrow cone.
* **Hierarchy.** Classes are grouped into ~sqrt(n_classes) super-classes (dog breeds under
  "dog"). A class centre is its super-class centre plus a class offset, so siblings are much
  closer to each other than to the rest.
* **Sub-modes.** Each class is a mixture of 1-5 sub-modes (day/night, close-up/wide shot). A
  sub-mode centre is the class centre plus an offset of random length, so two sub-modes of one
  class can be farther apart than the class is from a sibling.
* **Spread.** Within a sub-mode, a row varies in a low-rank subspace of its own (pose), in
  nuisance directions shared by the whole super-class (lighting, background: these pull
  siblings' rows toward each other) and a little isotropically. Spreads differ per sub-mode.
* **Ambiguous rows.** A share of rows sits part-way toward a sibling class (a photo of two
  things); past the midpoint they are closer to the wrong class, an honest irreducible error.
* **Class sizes** follow a Zipf law (exponent `zipf`), from thousands of rows down to dozens.
* **Outliers** (`outliers`, 2%): half are junk with y = -1 (random directions near the cone),
  half are atypical members that keep their class label but lie far from every sub-mode.
* **Near-duplicates** (1%): a row copied from another with tiny noise; same label; listed in
  `info["duplicate_pairs"]`.

Rows are generated one sub-mode at a time from a per-sub-mode seed and written to shuffled
positions, so memory stays at the output array (2 GB for 1M x 512 float32) and the result does
not depend on chunking. Pass `cache_dir` to keep X and y as .npy files and re-open them
memory-mapped next time.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(__file__).resolve().parent / ".data"


@dataclass(frozen=True)
class SynthSpec:
    """The knobs of the generator; the defaults are the benchmark's data set."""

    common: float = 0.9  # weight of the direction every row shares
    class_offset: float = 0.75  # class centre distance from its super-class centre
    mode_offset: tuple = (0.3, 1.0)  # sub-mode centre distance from the class centre
    spread: tuple = (0.5, 1.0)  # per-sub-mode noise norm (before normalisation)
    pose_rank: int = 16  # rank of each sub-mode's own variation
    nuisance_rank: int = 16  # rank of the super-class shared nuisance
    pose_share: float = 0.55  # share of noise variance: own pose subspace
    nuisance_share: float = 0.30  # share: shared nuisance; the rest is isotropic
    ambiguous: float = 0.03  # share of rows placed toward a sibling class
    zipf: float = 0.9  # class-size exponent
    min_class: int = 20  # no class smaller than this (when n allows)
    outliers: float = 0.02  # half junk (y=-1), half atypical members
    duplicates: float = 0.01  # share of rows that are near-copies of another row
    n_modes: tuple = (1, 5)  # sub-modes per class, drawn uniformly from lo..hi inclusive
    label_noise: float = 0.0  # share of rows whose label says a sibling class (annotator slips)
    mode_toward_sibling: float = 0.0  # sub-mode centres move up to this share toward a sibling
    spread_toward_sibling: float = 0.0  # std of each row's shift along the line to that sibling


PRESETS: dict[str, SynthSpec] = {
    # Nearly separable: nearest-class-mean accuracy ~0.9998 on the clean rows at 20k.
    "default": SynthSpec(),
    # Built like a real embedding space: close sibling classes in families, 1-4 strongly
    # anisotropic sub-modes per class that reach toward siblings, heavy Zipf imbalance, 3%
    # outliers, 1% near-copies, 8% rows part-way to a sibling and 2% label noise.
    # Nearest-class-mean accuracy is well below 1 (0.90 at 50k; `python bench/synth.py`).
    "hard": SynthSpec(
        class_offset=0.4,
        mode_toward_sibling=0.6,
        spread_toward_sibling=0.5,
        mode_offset=(0.4, 1.0),
        spread=(0.6, 1.1),
        pose_rank=6,
        nuisance_rank=12,
        pose_share=0.65,
        nuisance_share=0.25,
        ambiguous=0.08,
        zipf=1.1,
        min_class=15,
        outliers=0.03,
        duplicates=0.01,
        n_modes=(1, 4),
        label_noise=0.02,
    ),
}


def _unit_rows(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
    g = rng.standard_normal((k, d), dtype=np.float32)
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def _gauss(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
    # N(0, I/d): norm ~1 in high dimension, unlike a unit vector it varies a little.
    return rng.standard_normal((k, d), dtype=np.float32) / np.float32(np.sqrt(d))


def _class_sizes(n: int, n_classes: int, spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    ranks = np.arange(1, n_classes + 1, dtype=np.float64)
    w = ranks**-spec.zipf
    w = w / w.sum()
    floor = min(spec.min_class, max(1, n // (4 * n_classes)))
    sizes = np.maximum(floor, np.floor(w * n)).astype(np.int64)
    # Adjust the largest classes so the sizes sum to n exactly.
    diff = n - int(sizes.sum())
    i = 0
    while diff != 0:
        step = 1 if diff > 0 else -1
        if sizes[i % n_classes] + step >= 1:
            sizes[i % n_classes] += step
            diff -= step
        i += 1
    return rng.permutation(sizes)


def make_synthetic(
    n: int,
    d: int = 512,
    n_classes: int = 1000,
    seed: int = 0,
    *,
    spec: SynthSpec | str = SynthSpec(),
    cache_dir: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Make `n` unit embeddings of dimension `d` in `n_classes` classes (see the module doc).

    Args:
        n: number of rows.
        d: dimension.
        n_classes: number of true classes (clipped to n // 2).
        seed: everything follows from it.
        spec: the generator's knobs, or the name of a preset in PRESETS ("default", "hard").
        cache_dir: when given, X and y are saved there as .npy and re-opened memory-mapped
            on the next call with the same arguments.

    Returns:
        (X float32 (n, d) unit rows, y int32 (n,) true class or -1 for junk, info dict with
        "mode" (int32 sub-mode id per row), "class_sizes", "n_modes" (per class),
        "outliers" (row indices), "junk" (row indices), "ambiguous" (row indices),
        "duplicate_pairs" (int64 (P, 2): original, copy), "label_noise" (rows whose label
        was flipped to a sibling), "spec").
    """
    if n < 2:
        raise ValueError(f"make_synthetic needs n >= 2, got {n}")
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"unknown synthetic preset {spec!r}; known: {', '.join(PRESETS)}")
        spec = PRESETS[spec]
    n_classes = max(1, min(n_classes, n // 2))
    key = json.dumps(
        {"n": n, "d": d, "c": n_classes, "seed": seed, "spec": asdict(spec)}, sort_keys=True
    )
    tag = hashlib.sha1(key.encode()).hexdigest()[:10]
    if cache_dir is not None:
        folder = Path(cache_dir)
        x_path = folder / f"synth_{n}_{d}_{tag}_X.npy"
        y_path = folder / f"synth_{n}_{d}_{tag}_y.npy"
        i_path = folder / f"synth_{n}_{d}_{tag}_info.npz"
        if x_path.exists() and y_path.exists() and i_path.exists():
            log.info("re-using cached synthetic set %s", x_path)
            info = _load_info(i_path)
            return np.load(x_path, mmap_mode="r"), np.load(y_path), info
    X, y, info = _generate(n, d, n_classes, seed, spec)
    if cache_dir is not None:
        folder.mkdir(parents=True, exist_ok=True)
        # Write under a temporary name, then rename, so an interrupted run leaves no half file.
        for path, arr in ((x_path, X), (y_path, y)):
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, arr)
            tmp.replace(path)
        tmp = i_path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            **{k: v for k, v in info.items() if isinstance(v, np.ndarray)},
            spec=json.dumps(asdict(spec)),
        )
        tmp.replace(i_path)
    return X, y, info


def _load_info(path: Path) -> dict:
    with np.load(path) as z:
        info = {k: z[k] for k in z.files if k != "spec"}
        info["spec"] = json.loads(str(z["spec"]))
    return info


def _generate(n: int, d: int, n_classes: int, seed: int, spec: SynthSpec):
    root = np.random.SeedSequence(seed)
    s_layout, s_modes, s_extra = root.spawn(3)
    rng = np.random.default_rng(s_layout)

    n_junk = round(n * spec.outliers / 2)
    n_atyp = round(n * spec.outliers / 2)
    n_dup = round(n * spec.duplicates)
    n_core = n - n_junk - n_dup
    sizes = _class_sizes(n_core, n_classes, spec, rng)

    n_super = max(1, round(np.sqrt(n_classes)))
    common = _unit_rows(rng, 1, d)[0] * np.float32(spec.common)
    supers = _gauss(rng, n_super, d)
    super_of = rng.integers(0, n_super, n_classes)
    centres = supers[super_of] + np.float32(spec.class_offset) * _gauss(rng, n_classes, d)
    nuisance = [
        np.linalg.qr(rng.standard_normal((d, spec.nuisance_rank)))[0].astype(np.float32)
        for _ in range(n_super)
    ]
    # Sibling to lean toward, for ambiguous rows: a random other class of the same super-class.
    sibling = np.empty(n_classes, dtype=np.int64)
    for c in range(n_classes):
        same = np.flatnonzero(super_of == super_of[c])
        same = same[same != c]
        sibling[c] = rng.choice(same) if same.size else rng.integers(0, n_classes)

    n_modes = rng.integers(spec.n_modes[0], spec.n_modes[1] + 1, n_classes)
    n_modes = np.minimum(n_modes, np.maximum(1, sizes // 10))
    mode_class = np.repeat(np.arange(n_classes), n_modes)
    mode_sizes = np.empty(mode_class.size, dtype=np.int64)
    pos = 0
    for c in range(n_classes):
        k = int(n_modes[c])
        share = rng.dirichlet(np.full(k, 2.0))
        part = np.floor(share * sizes[c]).astype(np.int64)
        part[0] += sizes[c] - part.sum()
        mode_sizes[pos : pos + k] = part
        pos += k
    lo, hi = spec.mode_offset
    mode_centres = centres[mode_class] + (
        rng.uniform(lo, hi, (mode_class.size, 1)).astype(np.float32)
        * _unit_rows(rng, mode_class.size, d)
    )
    lo, hi = spec.spread
    mode_spread = rng.uniform(lo, hi, mode_class.size).astype(np.float32)
    if spec.mode_toward_sibling > 0:
        # Sub-modes reach part-way toward a sibling class (a fox pose that looks like a dog).
        sib = sibling[mode_class]
        toward = centres[sib] - centres[mode_class]
        share = rng.uniform(0, spec.mode_toward_sibling, (mode_class.size, 1))
        mode_centres += share.astype(np.float32) * toward
    else:
        toward = None

    perm = rng.permutation(n)  # shuffled destination rows
    X = np.empty((n, d), dtype=np.float32)
    y = np.empty(n, dtype=np.int32)
    mode_of = np.full(n, -1, dtype=np.int32)
    ambiguous_rows = []
    iso_share = max(0.0, 1.0 - spec.pose_share - spec.nuisance_share)
    start = 0
    for m, ss in enumerate(s_modes.spawn(mode_class.size)):
        k = int(mode_sizes[m])
        if k == 0:
            continue
        r = np.random.default_rng(ss)
        c = int(mode_class[m])
        pose = np.linalg.qr(r.standard_normal((d, spec.pose_rank)))[0].astype(np.float32)
        nuis = nuisance[super_of[c]]
        s = mode_spread[m]
        noise = (
            np.sqrt(spec.pose_share)
            * (r.standard_normal((k, spec.pose_rank), dtype=np.float32) @ pose.T)
            / np.sqrt(spec.pose_rank)
            + np.sqrt(spec.nuisance_share)
            * (r.standard_normal((k, spec.nuisance_rank), dtype=np.float32) @ nuis.T)
            / np.sqrt(spec.nuisance_rank)
            + np.sqrt(iso_share) * _gauss(r, k, d)
        )
        rows = mode_centres[m] + s * noise
        if toward is not None and spec.spread_toward_sibling > 0:
            # Anisotropy along a meaningful axis: rows spread along the line to the sibling.
            shift = r.standard_normal((k, 1), dtype=np.float32) * spec.spread_toward_sibling
            rows += shift * toward[m]
        # Ambiguous rows lean toward a sibling's centre by t in (0.2, 0.65).
        amb = r.random(k) < spec.ambiguous
        if amb.any():
            t = r.uniform(0.2, 0.65, (int(amb.sum()), 1)).astype(np.float32)
            rows[amb] = (1 - t) * rows[amb] + t * (centres[sibling[c]] + s * noise[amb])
        dest = perm[start : start + k]
        X[dest] = rows + common
        y[dest] = c
        mode_of[dest] = m
        ambiguous_rows.append(dest[amb])
        start += k
    assert start == n_core

    r = np.random.default_rng(s_extra)
    # Atypical members: existing class rows replaced by a far-off version of their class.
    core_dest = perm[:n_core]
    atyp = r.choice(core_dest, size=min(n_atyp, n_core), replace=False)
    X[atyp] = centres[y[atyp]] + 1.6 * _gauss(r, atyp.size, d) + common
    mode_of[atyp] = -1
    # Junk: random directions in the cone, no class.
    junk = perm[n_core : n_core + n_junk]
    X[junk] = _gauss(r, junk.size, d) * 1.3 + common
    y[junk] = -1
    # Near-duplicates: copies of core rows with tiny noise.
    dups = perm[n_core + n_junk :]
    orig = r.choice(core_dest, size=dups.size, replace=True)
    X[dups] = X[orig] + 0.03 * _gauss(r, dups.size, d)
    y[dups] = y[orig]
    mode_of[dups] = mode_of[orig]
    # Label noise: a share of class rows carry a sibling's label (the vector is unchanged).
    flipped = np.zeros(0, dtype=np.int64)
    if spec.label_noise > 0:
        labelled = np.flatnonzero(y >= 0)
        flipped = np.sort(
            r.choice(labelled, size=round(spec.label_noise * labelled.size), replace=False)
        )
        y[flipped] = sibling[y[flipped]]

    for a in range(0, n, 65536):  # normalise in chunks: no second 2 GB array
        blk = X[a : a + 65536]
        blk /= np.linalg.norm(blk, axis=1, keepdims=True)
    # A copy made before normalisation is re-normalised the same way, so it stays near.
    info = {
        "mode": mode_of,
        "class_sizes": sizes,
        "n_modes": n_modes,
        "outliers": np.sort(np.concatenate([junk, atyp])).astype(np.int64),
        "junk": np.sort(junk).astype(np.int64),
        "ambiguous": np.sort(np.concatenate(ambiguous_rows)).astype(np.int64),
        "duplicate_pairs": np.stack([orig, dups], axis=1).astype(np.int64),
        "label_noise": flipped.astype(np.int64),
        "spec": asdict(spec),
    }
    return X, y, info


def separability(X: np.ndarray, y: np.ndarray, sample: int = 20_000, seed: int = 0) -> dict:
    """How hard a labelled set is: nearest-class-mean and 1-NN accuracy, cosines within/across.

    Computed on up to `sample` random rows with a class (junk rows, y = -1, are left out);
    class means come from all of those rows, 1-NN searches the sample itself (leave-one-out).

    Returns:
        dict with "ncm_accuracy", "nn1_accuracy", "cos_within", "cos_across", "rows".
    """
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(y >= 0)
    if rows.size > sample:
        rows = np.sort(rng.choice(rows, sample, replace=False))
    Z = np.asarray(X[rows], dtype=np.float32)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    yy = y[rows]
    classes, inv = np.unique(yy, return_inverse=True)
    means = np.zeros((classes.size, Z.shape[1]), dtype=np.float64)
    np.add.at(means, inv, Z)
    means = (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)
    ncm = float(np.mean(np.argmax(Z @ means.T, axis=1) == inv))
    nn_right = 0
    within, across = [], []
    for a in range(0, Z.shape[0], 2048):
        sims = Z[a : a + 2048] @ Z.T
        np.fill_diagonal(sims[:, a : a + 2048], -np.inf)
        nn_right += int(np.sum(inv[np.argmax(sims, axis=1)] == inv[a : a + 2048]))
        same = inv[a : a + 2048, None] == inv[None, :]
        finite = np.isfinite(sims)
        within.append(sims[same & finite].mean())
        across.append(sims[~same].mean())
    return {
        "ncm_accuracy": ncm,
        "nn1_accuracy": nn_right / Z.shape[0],
        "cos_within": float(np.mean(within)),
        "cos_across": float(np.mean(across)),
        "rows": int(Z.shape[0]),
    }


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Make a synthetic set and print how separable it is.")
    ap.add_argument("--preset", default="hard", choices=sorted(PRESETS))
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=0, help="default n / 1000, at least 10")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n_classes = args.classes or max(10, args.n // 1000)
    X, y, info = make_synthetic(args.n, args.dim, n_classes, args.seed, spec=args.preset)
    s = separability(X, y, seed=args.seed)
    print(
        f"preset {args.preset}, {args.n:,} x {args.dim}, {n_classes} classes "
        f"(sizes {info['class_sizes'].min()}..{info['class_sizes'].max()}): "
        f"nearest-class-mean accuracy {s['ncm_accuracy']:.4f}, 1-NN accuracy "
        f"{s['nn1_accuracy']:.4f}, mean cosine within a class {s['cos_within']:.3f}, "
        f"across {s['cos_across']:.3f} (on {s['rows']:,} rows with a class)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
