"""The sample corpus's pictures: one painter per image class, encoded in every format and mode.

Each class is a visual idea a model can group (red discs, blue squares, checkerboards, ...),
drawn with seeded variation in position, size, colour and noise, so the corpus is the same
bytes on every machine.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING

from curator.sample_plan import PIL_FORMATS, SampleFile, rng_of

if TYPE_CHECKING:  # numpy is imported inside functions so importing this module stays cheap
    import numpy as np

# --------------------------------------------------------------------------------------------
# Images: one renderer per class, registered by name. Each returns uint8 (h, w, 3).


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Blotchy texture in [0, 1]: a coarse random grid upsampled bilinearly."""
    import numpy as np
    from PIL import Image

    gh, gw = max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w))
    grid = rng.random((gh, gw), dtype=np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((w, h), Image.BILINEAR))


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def _rotated(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by a random angle about a random point."""
    import numpy as np

    yy, xx = _grid(h, w)
    a = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    u = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
    v = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
    return u, v


def colour_of(rng: np.random.Generator, lo: tuple, hi: tuple) -> tuple[int, int, int]:
    """A random colour between two RGB corners."""
    return tuple(int(rng.integers(a, b + 1)) for a, b in zip(lo, hi))


def fill(h: int, w: int, colour: tuple) -> np.ndarray:
    """An (h, w, 3) float32 canvas of one colour."""
    import numpy as np

    return np.broadcast_to(np.asarray(colour, np.float32), (h, w, 3)).copy()


def _polygon(cx: float, cy: float, radius: float, sides: int, angle: float, jitter, rng) -> list:
    import numpy as np

    a = angle + np.arange(sides) * 2 * np.pi / sides
    r = radius * (1 + jitter * rng.uniform(-1, 1, sides))
    return [(float(cx + rr * np.cos(t)), float(cy + rr * np.sin(t))) for rr, t in zip(r, a)]


def draw_on(arr: np.ndarray, paint: Callable) -> np.ndarray:
    """Run `paint(ImageDraw)` over a float RGB array and return the result as float."""
    import numpy as np
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    paint(ImageDraw.Draw(img))
    return np.asarray(img).astype(np.float32)


def _red_discs(rng, w: int, h: int) -> np.ndarray:
    yy, _ = _grid(h, w)
    bg = fill(h, w, colour_of(rng, (235, 200, 150), (255, 235, 190)))  # warm cream
    shade = (
        1
        - 0.12 * (yy / h)[..., None] * rng.uniform(0, 1)
        - 0.08 * smooth_noise(rng, h, w, 6)[..., None]
    )
    s = min(w, h)

    def paint(d) -> None:
        for _ in range(int(rng.integers(1, 4))):
            r = s * rng.uniform(0.15, 0.35)
            cx, cy = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(0.1 * h, 0.9 * h)
            red = colour_of(rng, (170, 0, 0), (250, 45, 40))
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=red)
            # A lighter off-centre highlight gives the discs a shaded, glossy texture.
            hr, off = r * rng.uniform(0.25, 0.45), r * rng.uniform(0.2, 0.35)
            light = tuple(min(255, c + 45) for c in red)
            d.ellipse([cx - off - hr, cy - off - hr, cx - off + hr, cy - off + hr], fill=light)

    return draw_on(bg * shade, paint)


def _blue_squares(rng, w: int, h: int) -> np.ndarray:
    import numpy as np

    yy, xx = _grid(h, w)
    grey = rng.uniform(140, 180)  # a cool mid grey, well away from the red discs' cream
    bg = fill(h, w, (grey, grey + rng.uniform(0, 6), grey + rng.uniform(4, 14)))
    pitch = rng.integers(8, 17)
    lines = ((yy % pitch) < 1) | ((xx % pitch) < 1)  # faint graph-paper texture
    bg[lines] -= rng.uniform(10, 30)
    s = min(w, h)

    def paint(d) -> None:
        for _ in range(int(rng.integers(1, 4))):
            r = s * rng.uniform(0.14, 0.3)
            cx, cy = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(0.1 * h, 0.9 * h)
            angle = rng.uniform(0, np.pi / 2)
            blue = colour_of(rng, (0, 25, 160), (40, 100, 250))
            edge = tuple(int(c * 0.55) for c in blue)
            d.polygon(
                _polygon(cx, cy, r * 1.41, 4, angle, 0, rng),
                fill=blue,
                outline=edge,
                width=max(1, int(r * 0.12)),
            )

    return draw_on(bg, paint)


def _green_triangles(rng, w: int, h: int) -> np.ndarray:
    import numpy as np

    base = np.asarray(colour_of(rng, (45, 35, 15), (80, 60, 35)), np.float32)
    tex = smooth_noise(rng, h, w, int(rng.integers(8, 24)))[..., None]
    bg = base * (0.7 + 0.6 * tex)
    s = min(w, h)

    def paint(d) -> None:
        for _ in range(int(rng.integers(1, 4))):
            r = s * rng.uniform(0.18, 0.38)
            cx, cy = rng.uniform(0.15 * w, 0.85 * w), rng.uniform(0.15 * h, 0.85 * h)
            green = colour_of(rng, (15, 140, 15), (70, 230, 70))
            pts = _polygon(cx, cy, r, 3, rng.uniform(0, 2 * np.pi), 0.15, rng)
            d.polygon(pts, fill=green, outline=(150, 255, 120), width=max(1, int(r * 0.06)))

    return draw_on(bg, paint)


def _yellow_stripes(rng, w: int, h: int) -> np.ndarray:
    import numpy as np

    u, v = _rotated(rng, h, w)
    period = rng.uniform(10, 40)
    wobble = rng.uniform(0, 0.3) * period * np.sin(v / rng.uniform(20, 80))  # wavy sometimes
    on = ((u + wobble) / period) % 1.0 < rng.uniform(0.4, 0.6)
    yellow = np.asarray(colour_of(rng, (215, 180, 0), (255, 230, 45)), np.float32)
    black = np.asarray(colour_of(rng, (0, 0, 0), (35, 30, 20)), np.float32)
    return np.where(on[..., None], yellow, black)


def _checkerboards(rng, w: int, h: int) -> np.ndarray:
    import numpy as np

    u, v = _rotated(rng, h, w)
    tile = rng.uniform(8, 40)
    stretch = rng.uniform(1.0, 1.5)  # a little anisotropy, as if seen at an angle
    on = (np.floor(u / tile) + np.floor(v / (tile * stretch))) % 2 == 0
    light, dark = rng.uniform(205, 255), rng.uniform(0, 30)
    grey = np.where(on, light, dark).astype(np.float32)
    return np.repeat(grey[..., None], 3, axis=2)


def _sky_horizons(rng, w: int, h: int) -> np.ndarray:
    import numpy as np

    yy, xx = _grid(h, w)
    horizon = h * rng.uniform(0.45, 0.75) + (xx - w / 2) * np.tan(np.radians(rng.uniform(-8, 8)))
    top = np.asarray(colour_of(rng, (15, 55, 160), (60, 110, 230)), np.float32)
    low = np.asarray(colour_of(rng, (140, 185, 230), (195, 230, 255)), np.float32)
    t = np.clip(yy / np.maximum(horizon, 1), 0, 1)[..., None]
    sky = top * (1 - t) + low * t
    ground_colour = np.asarray(colour_of(rng, (45, 75, 15), (100, 130, 50)), np.float32)
    tex = smooth_noise(rng, h, w, int(rng.integers(10, 30)))[..., None]
    depth = np.clip((yy - horizon) / h, 0, 1)[..., None]
    ground = ground_colour * (0.75 + 0.5 * tex) * (1 - 0.5 * depth)
    out = np.where((yy > horizon)[..., None], ground, sky)
    if rng.random() < 0.5:  # a sun, sometimes
        r = min(w, h) * rng.uniform(0.05, 0.1)
        cx, cy = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(r, 0.35 * h)
        sun = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None]
        out = np.where(sun & (yy < horizon)[..., None], np.float32([255, 245, 200]), out)
    return out


def _purple_rings(rng, w: int, h: int) -> np.ndarray:
    import numpy as np

    yy, xx = _grid(h, w)
    base = np.asarray(colour_of(rng, (5, 0, 15), (30, 18, 45)), np.float32)
    d = np.hypot((xx - w / 2) / w, (yy - h / 2) / h)[..., None]
    bg = base * (1.2 - 0.8 * d)  # vignette
    s = min(w, h)

    def paint(dr) -> None:
        for _ in range(int(rng.integers(1, 4))):
            r = s * rng.uniform(0.15, 0.4)
            cx, cy = rng.uniform(0.15 * w, 0.85 * w), rng.uniform(0.15 * h, 0.85 * h)
            purple = colour_of(rng, (120, 0, 150), (200, 50, 240))
            dr.ellipse(
                [cx - r, cy - r, cx + r, cy + r],
                outline=purple,
                width=max(2, int(r * rng.uniform(0.2, 0.45))),
            )

    return draw_on(bg, paint)


IMAGE_RENDERERS: dict[str, Callable[..., np.ndarray]] = {
    "red_discs": _red_discs,
    "blue_squares": _blue_squares,
    "green_triangles": _green_triangles,
    "yellow_stripes": _yellow_stripes,
    "checkerboards": _checkerboards,
    "sky_horizons": _sky_horizons,
    "purple_rings": _purple_rings,
}
"""Class name -> renderer `(rng, width, height) -> float RGB (h, w, 3)` in 0..255."""


def render_image(f: SampleFile, seed: int) -> np.ndarray:
    """The pixels of a planned image before encoding: uint8 (height, width, 3).

    Adds the within-class nuisance every class shares: colour jitter and additive noise.

    Args:
        f: a planned image file.
        seed: the corpus seed.

    Returns:
        The RGB pixels, upright (before any EXIF rotation of the stored file).
    """
    import numpy as np

    rng = rng_of(seed, "image", f.index, 1)
    arr = IMAGE_RENDERERS[f.label](rng, f.width, f.height)
    gain = 1 + rng.uniform(-0.08, 0.08, 3).astype(np.float32)
    arr = arr * gain + rng.uniform(-10, 10)
    # Uniform noise from random bytes: much cheaper than Gaussian and looks the same here.
    noise = rng.integers(0, 256, arr.shape, dtype=np.uint8).astype(np.float32) - 127.5
    arr += noise * np.float32(rng.uniform(0, 10) / 74)
    return np.clip(arr + 0.5, 0, 255).astype(np.uint8)


def image_bytes(f: SampleFile, rgb: np.ndarray) -> bytes:
    """Encode pixels the way the plan says; returns the file bytes."""
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(rgb)
    fmt = PIL_FORMATS[f.fmt]
    if f.variant == "cmyk":
        img.convert("CMYK").save(buf, fmt, quality=90)
    elif f.variant == "animated":
        shift = max(1, f.width // 12)
        frames = [
            Image.fromarray(np.roll(rgb, k * shift, axis=1)).quantize(
                256, method=Image.Quantize.FASTOCTREE
            )
            for k in range(5)
        ]
        frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=120, loop=0)
    elif f.variant == "exif_rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
        img.transpose(Image.Transpose.ROTATE_90).save(buf, fmt, quality=90, exif=exif.tobytes())
    elif f.variant == "i16":
        grey = np.asarray(img.convert("L")).astype(np.uint16)
        # Dark tiles stay near zero and light tiles use the 16-bit range, so the picture reads
        # the same whether a decoder scales 16->8 bits or (like Pillow's convert) clips.
        wide = np.where(grey >= 128, grey * 257, grey // 8).astype(np.uint16)
        Image.fromarray(wide).save(buf, fmt)
    elif f.variant == "palette_alpha":
        pal = img.quantize(colors=64)
        background = int(np.bincount(np.asarray(pal).ravel()).argmax())
        pal.save(buf, fmt, transparency=background)
    elif fmt == "JPEG":
        img.save(buf, fmt, quality=int(70 + f.index % 4 * 8))
    elif fmt == "GIF":
        # Pillow's default adaptive palette is ten times slower on noisy pictures.
        img.quantize(256, method=Image.Quantize.FASTOCTREE).save(buf, fmt)
    elif fmt == "PNG":
        img.save(buf, fmt, compress_level=1)
    elif fmt == "WEBP":
        img.save(buf, fmt, quality=80, method=0)
    else:
        img.save(buf, fmt)
    return buf.getvalue()
