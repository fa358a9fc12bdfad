"""The weight-free `classic` embedder: colour, layout, gradient, spectral and motion features.

`classic` needs no model weights, runs anywhere in NumPy and is deterministic: the same file gives
the same vector on every run and every machine. It is right for near-duplicates (re-encodes,
resizes, small edits) and for simple corpora whose groups differ in colour, layout, texture,
timbre, pitch or motion. It is NOT semantic search: it cannot tell a cat from a dog of the same
colours, and it has no text tower. Use CLIP or CLAP for meaning.

Each modality's features are built in blocks, each block normalised and weighted, concatenated,
then mapped to `DIM` dimensions by a fixed seeded random projection (Rademacher +-1 drawn from
PCG64's raw bit stream, which NumPy keeps stable across versions), signed-square-rooted and
L2-normalised:

- image (64 x 64 squashed, read at 32 x 32): HSV colour histogram (global and per quadrant),
  8 x 8 grey layout, 4 x 4 opponent-colour layout, 4 x 4 grid of 9-bin gradient-orientation
  histograms (HOG-like) and their sum.
- audio (16 kHz mono, up to 6 windows of 5 s): 64-band log-mel spectral shape, std and delta std
  over time; spectral centroid / bandwidth / flatness / roll-off, zero-crossing rate and frame
  loudness (mean and std); onset strength and rhythm (autocorrelation of the onset envelope);
  the loudness envelope (sustained, bursty or percussive).
- video (8 frames): appearance (the mean of the frames' image features), what changes (their
  std) and motion (frame-difference energy, where and along which axis things move, the path of
  the centroid of motion), the last two weighted by how much moves, plus a stillness term.

All modalities share the space id "classic:v1"; audio vectors are not meant to match images.
Video frames get image vectors (`EmbedResult.frames`), so an image can find a video's frame.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from indexing.decode import DecodeSpec, MediaDecoder
from indexing.embedders.base import Decoded, Embedder, EmbedResult
from indexing.mel import mel_filterbank, power_spectrogram

log = logging.getLogger(__name__)

DIM = 256
SPACE = "classic:v1"
GRID = 64  # images and frames arrive at GRID x GRID
_FEAT = GRID // 2  # image features are read at _FEAT x _FEAT

# One seed per modality: changing any of them (or the features) is a new space, "classic:v2".
_SEEDS = {"image": 0x1A6E5EED, "audio": 0xA0D105EE, "video": 0x71DE05EE}

_HUE_BINS, _GREY_BINS = 8, 4
_COLOUR_BINS = _HUE_BINS * 2 * 2 + _GREY_BINS  # hue x saturation (2) x value (2), plus greys
_ORIENT_BINS, _CELLS = 9, 4  # HOG: 9 unsigned orientations on a 4 x 4 grid
_N_MELS = 64
_MOTION_WEIGHT = 1.2  # change and motion blocks of a clearly moving video, against appearance 1
# stats 4 + where 16 + spread 2 + centroid path 8 + brightness trend 2 (a test checks it).
_MOTION_DIMS = 32


def classic_decode_spec() -> DecodeSpec:
    """The decoding `classic` uses: small squashed images, 8 frames, 16 kHz audio in 5 s windows."""
    return DecodeSpec(
        image_size=GRID,
        resize_mode="squash",
        video_frames=8,
        audio_rate=16000,
        audio_window_s=5.0,
        audio_max_windows=6,
    )


# ------------------------------------------------------------------------------------- helpers


def _l2(x: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """Rows scaled to unit L2 norm; rows whose norm is under `floor` shrink towards zero instead."""
    norm = np.sqrt(np.sum(x * x, axis=-1, keepdims=True) + floor * floor)
    return x / norm


def _centred_hist(counts: np.ndarray) -> np.ndarray:
    """Histogram rows as Hellinger vectors (sqrt of frequencies), mean-removed, unit norm.

    Removing the mean drops the direction every histogram shares, so unrelated images do not all
    look alike by cosine.
    """
    freq = counts / np.maximum(counts.sum(axis=-1, keepdims=True), 1e-12)
    root = np.sqrt(freq)
    return _l2(root - root.mean(axis=-1, keepdims=True))


def rademacher_projection(n_in: int, n_out: int, seed: int) -> np.ndarray:
    """A fixed (n_in, n_out) matrix of +-1/sqrt(n_out) drawn from PCG64's raw output.

    Raw bit-generator output is what NumPy promises to keep stable, unlike its distributions, so
    the matrix (and so every classic vector) is identical across NumPy versions and machines.
    """
    words = -(-n_in * n_out // 64)
    raw = np.random.default_rng(seed).bit_generator.random_raw(words).astype("<u8")
    bits = np.unpackbits(raw.view(np.uint8))[: n_in * n_out].reshape(n_in, n_out)
    return ((bits.astype(np.float32) * 2.0 - 1.0) / np.sqrt(n_out)).astype(np.float32)


def _finish(raw: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """Project, power-normalise (signed sqrt) and L2-normalise rows of raw features."""
    # Not `raw @ projection`: BLAS blocks a matrix product differently for different batch
    # sizes, so an item's vector would depend on which items shared its batch (a resumed run
    # would then differ in the last bit). einsum's own loop sums each row in one fixed order.
    y = np.einsum("ij,jk->ik", raw.astype(np.float32), projection)
    y = np.sign(y) * np.sqrt(np.abs(y))
    return _l2(y, 1e-12).astype(np.float32)


def _as_grid(images: np.ndarray) -> np.ndarray:
    """(N, GRID, GRID, 3) uint8, resizing (bicubic) any image of another size."""
    if images.shape[1:] == (GRID, GRID, 3):
        return images
    from PIL import Image

    flat = images.reshape((-1, *images.shape[-3:]))
    return np.stack(
        [
            np.asarray(
                Image.fromarray(im).convert("RGB").resize((GRID, GRID), Image.Resampling.BICUBIC)
            )
            for im in flat
        ]
    )


# --------------------------------------------------------------------------------------- images


def image_features(images: np.ndarray) -> np.ndarray:
    """Raw (un-projected) classic features of a batch of RGB images.

    Args:
        images: uint8 (N, H, W, 3); other sizes than GRID square are resized.

    Returns:
        float32 (N, D) with each block normalised and weighted.
    """
    planes = np.ascontiguousarray(_as_grid(np.asarray(images, np.uint8)).transpose(3, 0, 1, 2))
    n = planes.shape[1]
    # Features are read at half the grid (2 x 2 means): a histogram or an 8-pixel HOG cell loses
    # nothing there, and every step below costs a quarter.
    small = planes.reshape(3, n, _FEAT, 2, _FEAT, 2).astype(np.float32).mean(axis=(3, 5))
    r, g, b = small * np.float32(1.0 / 255.0)  # contiguous (N, F, F) planes
    grey = 0.299 * r + 0.587 * g + 0.114 * b

    # HSV-like histogram: value and saturation from max/min, hue as the opponent-colour angle,
    # binned with red in the middle of bin 0; dark or unsaturated pixels go to grey-level bins.
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    sat = (mx - mn) / np.maximum(mx, 1e-6)
    angle = np.arctan2(np.float32(np.sqrt(3.0)) * (g - b), 2.0 * r - g - b)
    hue_bin = (angle * np.float32(_HUE_BINS / (2 * np.pi)) + np.float32(_HUE_BINS + 0.5)).astype(
        np.int32
    )
    hue_bin &= _HUE_BINS - 1
    colour_bin = _GREY_BINS + hue_bin * 4 + (sat > 0.55) * 2 + (mx > 0.6)
    grey_bin = np.minimum((mx * _GREY_BINS).astype(np.int32), _GREY_BINS - 1)
    bins = np.where((sat < 0.2) | (mx < 0.15), grey_bin, colour_bin)
    half = _FEAT // 2
    quadrant = (np.arange(_FEAT)[:, None] // half) * 2 + np.arange(_FEAT)[None, :] // half
    idx = (np.arange(n)[:, None, None] * 4 + quadrant) * _COLOUR_BINS + bins
    quad_counts = np.bincount(idx.ravel(), minlength=n * 4 * _COLOUR_BINS).reshape(
        n, 4, _COLOUR_BINS
    )
    colour_global = _centred_hist(quad_counts.sum(axis=1).astype(np.float32))
    colour_quad = _l2(_centred_hist(quad_counts.astype(np.float32)).reshape(n, -1))

    # Layouts: 8 x 8 grey (contrast-normalised) and 4 x 4 opponent colour.
    cell8 = _FEAT // 8
    layout = grey.reshape(n, 8, cell8, 8, cell8).mean(axis=(2, 4)).reshape(n, 64)
    layout = _l2(layout - layout.mean(axis=1, keepdims=True), 0.05)
    cell4 = _FEAT // 4
    o1 = (r - g) * np.float32(1 / np.sqrt(2))
    o2 = (r + g - 2 * b) * np.float32(1 / np.sqrt(6))
    opp = (
        np.stack([o1, o2], axis=1)
        .reshape(n, 2, 4, cell4, 4, cell4)
        .mean(axis=(3, 5))
        .reshape(n, 32)
    )
    opp = _l2(opp, 0.25)

    # HOG-like: unsigned orientations, linearly split between neighbouring bins, magnitude-weighted.
    gx = np.zeros_like(grey)
    gy = np.zeros_like(grey)
    gx[:, :, 1:-1] = grey[:, :, 2:] - grey[:, :, :-2]
    gy[:, 1:-1, :] = grey[:, 2:, :] - grey[:, :-2, :]
    mag = np.sqrt(gx * gx + gy * gy)
    # arctan2 is in [-pi, pi]; adding a whole turn of bins keeps `pos` positive for the int cast.
    pos = np.arctan2(gy, gx) * np.float32(_ORIENT_BINS / np.pi) + np.float32(2 * _ORIENT_BINS - 0.5)
    low = pos.astype(np.int32)
    frac = pos - low
    b0 = low % _ORIENT_BINS
    b1 = b0 + 1
    b1[b1 == _ORIENT_BINS] = 0
    step = _FEAT // _CELLS
    cell = (np.arange(_FEAT)[:, None] // step) * _CELLS + np.arange(_FEAT)[None, :] // step
    base = (np.arange(n)[:, None, None] * _CELLS * _CELLS + cell) * _ORIENT_BINS
    size = n * _CELLS * _CELLS * _ORIENT_BINS
    hog = np.bincount((base + b0).ravel(), (mag * (1 - frac)).ravel(), size)
    hog += np.bincount((base + b1).ravel(), (mag * frac).ravel(), size)
    hog = hog.reshape(n, _CELLS * _CELLS, _ORIENT_BINS).astype(np.float32)
    hog_global = _l2(np.sqrt(hog.sum(axis=1)), 0.05)
    hog = _l2(np.sqrt(hog).reshape(n, -1), 0.05)

    blocks = [
        (colour_global, 1.0),
        (colour_quad, 0.8),
        (layout, 1.0),
        (opp, 0.6),
        (hog, 1.0),
        (hog_global, 0.5),
    ]
    return np.concatenate([block * w for block, w in blocks], axis=1).astype(np.float32)


# ---------------------------------------------------------------------------------------- audio


def audio_features(windows: np.ndarray, rate: int, melbank: np.ndarray | None = None) -> np.ndarray:
    """Raw classic features of one audio clip.

    Frames that are (nearly) silent, 70 dB under the loudest frame, e.g. the padding of the last
    window, are left out of the statistics unless the whole clip is silent.

    Args:
        windows: float32 (W, S) mono windows.
        rate: their sample rate.
        melbank: a cached `mel_filterbank(rate, n_fft, 64, 30)`, else built here.

    Returns:
        float32 (D,) with each block normalised and weighted.
    """
    w = np.atleast_2d(np.asarray(windows, np.float32))
    n_fft = _audio_fft(rate)
    hop = n_fft  # frames side by side: statistics over time need no overlap; half the FFTs
    power = power_spectrogram(w, n_fft, hop)  # (W, T, bins)
    n_win, n_frames, n_bins = power.shape
    if melbank is None:
        melbank = mel_filterbank(rate, n_fft, _N_MELS, fmin=30.0)
    flat = power.reshape(-1, n_bins)
    # A 2-D product with a contiguous right side is what BLAS does fast; a stacked 3-D one is not.
    mel = flat @ np.ascontiguousarray(melbank.T)
    mel_db = (10.0 * np.log10(mel + 1e-10)).reshape(n_win, n_frames, _N_MELS)
    # Only the top 50 dB count: below that is window leakage and noise, whose dB values swing
    # widely from frame to frame and would swamp the variation statistics.
    mel_db = np.maximum(mel_db, mel_db.max() - 50.0)
    total = flat.sum(axis=1).reshape(n_win, n_frames)
    # Frames 70 dB under the loudest are padding or a resampler's ringing after the end, not sound.
    valid = total > total.max() * 1e-7
    if valid.sum() < 2:
        valid = np.ones_like(valid)
    v = mel_db[valid]  # (K, M)

    mel_mean = v.mean(axis=0)
    loudness = float(mel_mean.mean())
    shape = _l2(mel_mean - loudness, 1.0)
    # Variation over time keeps its size (a steady tone has none, a sweep a lot), squashed to
    # [0, 1] per band; dividing by sqrt(bands) keeps the block's norm at most 1.
    mel_std = np.tanh(v.std(axis=0) / 15.0) / np.sqrt(_N_MELS)
    delta = mel_db[:, 1:] - mel_db[:, :-1]
    pair = valid[:, 1:] & valid[:, :-1]
    d = delta[pair] if pair.sum() >= 2 else delta.reshape(-1, _N_MELS)
    d_std = d.std(axis=0) if d.shape[0] else np.zeros(_N_MELS, np.float32)
    delta_std = np.tanh(d_std / 10.0) / np.sqrt(_N_MELS)

    # Spectral descriptors per frame; frequencies as fractions of the Nyquist frequency.
    freqs = np.linspace(0.0, 1.0, n_bins, dtype=np.float32)
    p = flat[valid.ravel()] + 1e-12  # (K, bins)
    p_total = p.sum(axis=1)
    centroid = (p @ freqs) / p_total
    spread = np.maximum((p @ (freqs * freqs)) / p_total - centroid * centroid, 0.0)
    flatness = np.exp(np.log(p).mean(axis=1)) / p.mean(axis=1)
    mel_v = mel.reshape(n_win, n_frames, _N_MELS)[valid] + 1e-12
    rolloff = (np.cumsum(mel_v, axis=1) < 0.85 * mel_v.sum(axis=1, keepdims=True)).mean(axis=1)
    frame_db = 10.0 * np.log10(p_total)
    crossings = _zero_crossing_rate(w, n_frames, n_fft)[valid]
    per_frame = np.stack(
        [centroid, np.sqrt(spread), flatness, rolloff, crossings, (frame_db + 60.0) / 60.0], 1
    )
    spectral = np.concatenate([per_frame.mean(axis=0), 2.0 * per_frame.std(axis=0)])

    rhythm = _rhythm(mel_db, valid)
    envelope = _envelope(10.0 * np.log10(total + 1e-12), total > 0)
    blocks = [
        (shape, 0.7),
        (mel_std, 1.0),
        (delta_std, 1.0),
        (spectral, 1.5),
        (rhythm, 0.5),
        (envelope, 1.0),
        (np.array([np.tanh((loudness + 50.0) / 30.0)], np.float32), 0.3),
    ]
    return np.concatenate([np.ravel(block) * wgt for block, wgt in blocks]).astype(np.float32)


def _audio_fft(rate: int) -> int:
    """FFT length near 32 ms (512 at 16 kHz)."""
    return 1 << max(6, round(np.log2(rate * 0.032)))


def _zero_crossing_rate(w: np.ndarray, n_frames: int, frame: int) -> np.ndarray:
    """Zero crossings per sample in each of `n_frames` side-by-side frames, (W, n_frames)."""
    changes = np.signbit(w[:, 1:]) != np.signbit(w[:, :-1])
    length = n_frames * frame
    if changes.shape[1] < length:
        changes = np.pad(changes, ((0, 0), (0, length - changes.shape[1])))
    return changes[:, :length].reshape(w.shape[0], n_frames, frame).sum(axis=2) / float(frame)


def _envelope(frame_db: np.ndarray, present: np.ndarray) -> np.ndarray:
    """How the loudness moves: sustained, bursty or percussive (7 values in about [0, 1]).

    Quiet frames count here (gaps between beats are the point); only padding is left out.
    """
    db = frame_db[present] if present.sum() >= 2 else frame_db.ravel()
    rel = np.maximum(db - db.max(), -80.0)  # dB under the loudest frame
    p10, p50, p90 = np.percentile(rel, [10, 50, 90])
    steps = np.diff(np.maximum(frame_db - db.max(), -80.0), axis=1)[
        present[:, 1:] & present[:, :-1]
    ]
    jumps = float(np.abs(steps).mean()) if steps.size else 0.0
    return np.array(
        [
            -p10 / 80.0,
            -p50 / 80.0,
            -p90 / 80.0,
            float((rel > -10.0).mean()),
            float((rel > -30.0).mean()),
            np.tanh(jumps / 10.0),
            np.tanh(float(rel.std()) / 20.0),
        ],
        np.float32,
    )


def _rhythm(mel_db: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Onset strength statistics and the autocorrelation of the onset envelope in 8 lag bands.

    The lag bands are log-spaced from 2 to 64 frames (about 64 ms to 2 s at 16 kHz): the peak
    autocorrelation in each says how strongly the sound repeats at that period.
    """
    pair = valid[:, 1:] & valid[:, :-1]
    flux = np.maximum(mel_db[:, 1:] - mel_db[:, :-1], 0.0).mean(axis=-1) * pair  # (W, T-1)
    length = flux.shape[1]
    centred = flux - flux.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=2 * length, axis=1)
    acf = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, axis=1)[:, :length]
    acf = (acf / (acf[:, :1] + 1e-6)).mean(axis=0)  # normalised, averaged over windows
    edges = np.unique(np.geomspace(2, 65, 9).astype(int))
    bands = np.zeros(8, np.float32)
    for k in range(len(edges) - 1):
        lo, hi = edges[k], min(edges[k + 1], length)
        if lo < hi:
            bands[k] = acf[lo:hi].max()
    active = flux[pair]
    mean = float(active.mean()) if active.size else 0.0
    std = float(active.std()) if active.size else 0.0
    return np.concatenate([[np.tanh(mean / 3.0), np.tanh(std / 3.0)], bands]).astype(np.float32)


# ---------------------------------------------------------------------------------------- video


def video_features(frames: np.ndarray, frame_features: np.ndarray | None = None) -> np.ndarray:
    """Raw classic features of one video: pooled frame features plus motion.

    Appearance (the mean of the frame features) is one unit block. What changes over time (the
    std of the frame features) and how things move (`_motion`) are two more unit blocks, scaled
    by how much moves, and a last entry says how still the shot is: a moving shot is described
    about as much by its motion as by its look, a still one by its look and its stillness.

    Args:
        frames: uint8 (F, H, W, 3) frames in time order.
        frame_features: `image_features(frames)` when already computed.

    Returns:
        float32 (D,), the same length for any number of frames from one up.

    Raises:
        ValueError: no frames at all (there is nothing to describe).
    """
    x = np.asarray(frames, np.uint8)
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"a video needs at least one decoded frame (got shape {x.shape})")
    x = _as_grid(x)
    feats = image_features(x) if frame_features is None else frame_features
    appearance = _l2(feats.mean(axis=0), 1e-6)
    motion, moving = _motion(x)
    change = _l2(feats.std(axis=0), 1e-6)
    weight = np.float32(_MOTION_WEIGHT * moving)
    # Stillness is a motion feature too: still shots share it, so they group with each other
    # rather than with moving shots that happen to look alike.
    still = np.array([_MOTION_WEIGHT * (1.0 - moving)], np.float32)
    return np.concatenate([appearance, weight * change, weight * motion, still]).astype(np.float32)


def _motion(x: np.ndarray) -> tuple[np.ndarray, float]:
    """A unit motion descriptor and how much moves (0 still .. 1 clearly moving).

    The descriptor: frame-difference energy statistics, where motion happens (4 x 4 share), how
    far it spreads along x and y, the path of its centroid (position, spread, speed along each
    axis, mean velocity), and the brightness trend.
    """
    if x.shape[0] < 2:
        return np.zeros(_MOTION_DIMS, np.float32), 0.0
    rgb = x.astype(np.float32) * np.float32(1.0 / 255.0)
    brightness = rgb.mean(axis=(1, 2, 3))
    # The largest channel change sees a red square sliding over a green field of equal grey.
    diff = np.abs(rgb[1:] - rgb[:-1]).max(axis=-1)  # (F-1, G, G)
    energy = diff.mean(axis=(1, 2))
    # Sensor noise and re-encoding change pixels by a few percent at most: a pixel moved when it
    # changed by more than 8%, and a frame pair moves when 1% of its pixels did.
    changed = (diff > 0.08).mean(axis=(1, 2))
    level = np.tanh(changed / 0.01)
    moving = float(level.mean())
    stats = np.tanh(
        np.array(
            [10.0 * energy.mean(), 10.0 * energy.std(), 10.0 * energy.max(), 5.0 * changed.mean()]
        )
    )

    total = diff.mean(axis=0)  # (G, G)
    share = total / (total.sum() + 1e-9)
    step = GRID // 4
    where = 2.0 * share.reshape(4, step, 4, step).sum(axis=(1, 3)).ravel()
    coords = np.linspace(-1.0, 1.0, GRID, dtype=np.float32)
    col, row = share.sum(axis=0), share.sum(axis=1)
    spread = 2.0 * np.sqrt(
        [
            (col * (coords - (col * coords).sum()) ** 2).sum(),
            (row * (coords - (row * coords).sum()) ** 2).sum(),
        ]
    )

    mass = diff.sum(axis=(1, 2)) + 1e-6
    cx = (diff.sum(axis=1) * coords).sum(axis=1) / mass
    cy = (diff.sum(axis=2) * coords).sum(axis=1) / mass
    path = np.stack([cx, cy], 1) * level[:, None]  # (F-1, 2): ignore pairs where nothing moves
    velocity = np.diff(path, axis=0) if path.shape[0] > 1 else np.zeros((1, 2), np.float32)
    # Unsigned terms (how far and along which axis) weigh more than signed ones (which way):
    # a pan to the left is more like a pan to the right than like a still shot.
    centroid = np.concatenate(
        [
            0.5 * path.mean(axis=0),
            2.0 * path.std(axis=0),
            4.0 * np.abs(velocity).mean(axis=0),
            1.0 * velocity.mean(axis=0),
        ]
    )
    slope = np.polyfit(np.arange(len(brightness)), brightness, 1)[0]
    trend = np.array([np.tanh(20.0 * slope), 4.0 * brightness.std()])
    descriptor = np.concatenate([stats, where, spread, centroid, trend]).astype(np.float32)
    return _l2(descriptor, 1e-6), moving


# ------------------------------------------------------------------------------------- embedder


def _one_blas_thread():
    """A context that keeps BLAS to one thread (a no-op without threadpoolctl).

    Classic's matrix products are small; a multi-threaded BLAS spinning on cores that the decode
    workers are using made them a hundred times slower in measurements on a two-core machine.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


class ClassicEmbedder(Embedder):
    """Weight-free, deterministic features for images, audio and video (see the module docstring).

    Audio must come from this embedder's `decoder()` (16 kHz windows); images and frames of any
    size are accepted (other sizes than 64 square are resized first).
    """

    name = "classic"
    model_string = "v1"
    space = SPACE
    dim = DIM
    modalities = frozenset({"image", "audio", "video"})
    has_text = False
    joint_space = False  # one space id, but image, audio and video vectors are not comparable
    compute_bound = False

    def __init__(self) -> None:
        spec = self.spec = classic_decode_spec()
        self.preprocess = (
            f"images and frames {spec.image_size} px {spec.resize_mode}; "
            f"video {spec.video_frames} frames; audio {spec.audio_rate} Hz mono, "
            f"{spec.audio_window_s:g} s windows x {spec.audio_max_windows}; features v1 "
            f"projected to {DIM} (Rademacher), signed sqrt, L2"
        )
        n_fft = _audio_fft(spec.audio_rate)
        self._melbank = mel_filterbank(spec.audio_rate, n_fft, _N_MELS, fmin=30.0)
        silence = np.zeros((1, n_fft * 2), np.float32)
        dims = {
            "image": image_features(np.zeros((1, GRID, GRID, 3), np.uint8)).shape[1],
            "audio": audio_features(silence, spec.audio_rate, self._melbank).shape[0],
            "video": video_features(np.zeros((2, GRID, GRID, 3), np.uint8)).shape[0],
        }
        self._projections = {m: rademacher_projection(d, DIM, _SEEDS[m]) for m, d in dims.items()}
        self._by_modality = {"image": self._images, "audio": self._audio, "video": self._video}

    def decoder(self) -> MediaDecoder:
        """The worker-side decoder: 64 px squashed images, 8 frames, 16 kHz audio in 5 s windows."""
        return MediaDecoder(self.spec)

    def embed_batch(self, batch: Sequence[Decoded]) -> EmbedResult:
        """Classic vectors for decoded items of any modality, in input order.

        Args:
            batch: Decoded items without error.

        Returns:
            EmbedResult with (n, DIM) float32 unit vectors and, for videos, per-frame vectors that
            are image vectors of the frames (so images and video frames are comparable).

        Raises:
            ValueError: an item has no data or an unknown modality.
        """
        groups: dict[str, list[int]] = {}
        for i, item in enumerate(batch):
            if item.data is None or item.modality not in self.modalities:
                raise ValueError(
                    f"item {item.item_id}: cannot embed {item.modality!r} without data "
                    f"({item.error or 'no data'}); drop failed decodes before embedding"
                )
            groups.setdefault(item.modality, []).append(i)
        out = np.zeros((len(batch), DIM), np.float32)
        frames: dict[int, np.ndarray] = {}
        with _one_blas_thread():
            for modality, idx in groups.items():
                vectors, per_item = self._by_modality[modality]([batch[i].data for i in idx])
                out[idx] = vectors
                frames.update({idx[k]: v for k, v in per_item.items()})
        return EmbedResult(vectors=out, frames=frames)

    def _images(self, images: list[np.ndarray]) -> tuple[np.ndarray, dict]:
        raw = image_features(np.stack([_as_grid(np.asarray(im)[None])[0] for im in images]))
        return _finish(raw, self._projections["image"]), {}

    def _audio(self, clips: list[np.ndarray]) -> tuple[np.ndarray, dict]:
        rate = self.spec.audio_rate
        raw = np.stack([audio_features(c, rate, self._melbank) for c in clips])
        return _finish(raw, self._projections["audio"]), {}

    def _video(self, videos: list[np.ndarray]) -> tuple[np.ndarray, dict]:
        clips = [_as_grid(np.asarray(v, np.uint8)) for v in videos]
        per_frame = image_features(np.concatenate(clips))  # all frames of the batch at once
        bounds = np.cumsum([0] + [len(c) for c in clips])
        spans = [slice(bounds[k], bounds[k + 1]) for k in range(len(clips))]
        raw = np.stack(
            [video_features(c, per_frame[span]) for c, span in zip(clips, spans, strict=True)]
        )
        frame_vectors = _finish(per_frame, self._projections["image"])
        return _finish(raw, self._projections["video"]), {
            k: frame_vectors[span] for k, span in enumerate(spans)
        }


def create(**options: Any) -> ClassicEmbedder:
    """Build the classic embedder.

    Args:
        **options: options meant for model embedders (device, precision, batch_size, model, ...)
            are accepted and ignored: classic has nothing to load or place.

    Returns:
        A ClassicEmbedder.
    """
    if options:
        log.debug("classic embedder ignores options %s", sorted(options))
    return ClassicEmbedder()
