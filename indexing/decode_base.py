"""What every media decoder shares: the error for unusable content, its wording, resize modes."""

from __future__ import annotations

RESIZE_MODES = ("crop", "squash", "pad")

# OpenAI CLIP's normalisation mean as 8-bit RGB: letterbox padding in this colour becomes ~0
# after the model's normalisation, so padding carries no signal.
MEAN_GREY = (122, 116, 104)


class MediaError(ValueError):
    """A file has no usable content of the asked modality; the message says what is missing."""


def one_line(exc: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    reason = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return reason[:300]
