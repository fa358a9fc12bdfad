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
    spec: SynthSpec = SynthSpec(),
    cache_dir: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Make `n` unit embeddings of dimension `d` in `n_classes` classes (see the module doc).

    Args:
        n: number of rows.
        d: dimension.
        n_classes: number of true classes (clipped to n // 2).
        seed: everything follows from it.
        spec: the generator's knobs.
        cache_dir: when given, X and y are saved there as .npy and re-opened memory-mapped
            on the next call with the same arguments.

    Returns:
        (X float32 (n, d) unit rows, y int32 (n,) true class or -1 for junk, info dict with
        "mode" (int32 sub-mode id per row), "class_sizes", "n_modes" (per class),
        "outliers" (row indices), "junk" (row indices), "ambiguous" (row indices),
        "duplicate_pairs" (int64 (P, 2): original, copy), "spec").
    """
    if n < 2:
        raise ValueError(f"make_synthetic needs n >= 2, got {n}")
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

    n_modes = rng.integers(1, 6, n_classes)
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
        "spec": asdict(spec),
    }
    return X, y, info
