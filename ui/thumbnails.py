"""Thumbnails for views: an LRU of decoded images filled by batched background loads.

A view asks `image(item_id)`; a cached image comes back at once, otherwise `None` and the id is
queued. Queued ids are loaded together by one worker per batch (JPEG bytes from
`Project.thumbnail`, decoded to QImage off the GUI thread); `ready` then names the ids that
arrived so the view repaints just those. Nothing here ever blocks the GUI thread.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Optional

from PySide6.QtCore import QObject, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap

from ui.workers import submit

log = logging.getLogger(__name__)

MAX_SIDE = 256  # thumbnails are decoded at most this large; views scale down from here
BATCH = 48


def decode_jpeg(data: bytes, side: int) -> Optional[QImage]:
    """A JPEG decoded to fit `side` (libjpeg decodes straight to 1/2, 1/4 size: much faster)."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QImageReader

    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.ReadOnly)
    # Thumbnails are JPEGs: naming the format skips probing every image plugin.
    reader = QImageReader(buffer, QByteArray(b"jpeg" if data[:2] == b"\xff\xd8" else b""))
    size = reader.size()
    if size.isValid() and max(size.width(), size.height()) > side:
        reader.setScaledSize(size.scaled(side, side, Qt.KeepAspectRatio))
    image = reader.read()
    return None if image.isNull() else image


def _decode(project: Any, ids: list[int], side: int = MAX_SIDE,
            cancel: Any = None) -> dict[int, Optional[QImage]]:
    try:
        # One pass over the store for the batch (two file opens per item cost more than the
        # decoding itself).
        found: dict[int, Optional[bytes]] = project.thumbnails(ids)
    except Exception:  # noqa: BLE001 - then item by item, so one bad record spoils only itself
        log.debug("thumbnail batch read failed", exc_info=True)
        found = {}
    out: dict[int, Optional[QImage]] = {}
    for item_id in ids:
        if cancel is not None and cancel():
            break
        data = found.get(item_id)
        if item_id not in found:
            try:
                data = project.thumbnail(item_id)
            except Exception:  # noqa: BLE001 - one unreadable thumbnail must not stop the batch
                log.debug("thumbnail %s failed", item_id, exc_info=True)
                data = None
        out[item_id] = decode_jpeg(data, side) if data else None
    return out


class ThumbnailCache(QObject):
    """Decoded thumbnails by item id, loaded lazily in the background.

    Signals:
        ready(list): item ids whose image (or "no thumbnail") just arrived.
    """

    ready = Signal(list)

    def __init__(self, capacity: int = 4000, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.project: Any = None
        self.capacity = capacity
        self._images: OrderedDict[int, Optional[QImage]] = OrderedDict()
        self._pending: list[int] = []
        self._background: list[int] = []  # prefetches: loaded only when nothing else waits
        self._queued: set[int] = set()
        self._in_flight: set[int] = set()
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(0)
        self._flush_timer.timeout.connect(self._flush)
        self._generation = 0
        self.side = 160  # decode size: the largest tile any view shows now

    def set_side(self, side: int) -> None:
        """Views say how large they draw thumbnails; a larger size re-decodes from the JPEGs."""
        side = max(64, min(MAX_SIDE, int(side)))
        if side > self.side:
            self.side = side
            self.clear()
            self.ready.emit([])
        elif side < self.side and not self._images:
            self.side = side

    def set_project(self, project: Any) -> None:
        self.project = project
        self.clear()

    def clear(self) -> None:
        self._generation += 1
        self._images.clear()
        self._pending.clear()
        self._background.clear()
        self._queued.clear()
        self._in_flight.clear()

    def has(self, item_id: int) -> bool:
        return item_id in self._images

    def image(self, item_id: int) -> Optional[QImage]:
        """The cached image, or None (then it is queued for loading; watch `ready`)."""
        if item_id in self._images:
            self._images.move_to_end(item_id)
            return self._images[item_id]
        self.request([item_id])
        return None

    def request(self, ids: Iterable[int], front: bool = False, background: bool = False) -> None:
        """Queue ids for loading.

        Args:
            front: on screen now: decode before anything else, starting at once.
            background: a prefetch: decoded only while no other request waits.
        """
        new = [i for i in ids if i not in self._images and i not in self._in_flight
               and i not in self._queued]
        if not new:
            return
        self._queued.update(new)
        if background:
            self._background.extend(new)
            if not self._flush_timer.isActive():
                self._flush_timer.start()
            return
        if front:
            # What is on screen now: start decoding at once rather than after the next paint.
            self._pending[:0] = new
            self._flush()
            return
        self._pending.extend(new)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def forget_pending(self) -> None:
        """Drop queued (not yet started) loads: the view moved on to other items."""
        self._pending.clear()
        self._queued = set(self._background)

    def _flush(self) -> None:
        if self.project is None:
            self.forget_pending()
            self._background.clear()
            self._queued.clear()
            return
        if not self._pending and not self._in_flight and self._background:
            self._pending, self._background = self._background[:BATCH], self._background[BATCH:]
        # Keep at most a few batches in flight so newly visible items are not stuck behind
        # a long backlog of ones the user has already scrolled past; a screenful is split
        # evenly over the decoding threads.
        threads = max(1, self.pool.maxThreadCount())
        while self._pending and len(self._in_flight) < 3 * BATCH:
            size = BATCH if len(self._pending) > threads * BATCH else \
                -(-len(self._pending) // threads)
            batch, self._pending = self._pending[:size], self._pending[size:]
            self._queued.difference_update(batch)
            self._in_flight.update(batch)
            generation = self._generation
            submit(_decode, self.project, batch, self.side, pool=self.pool, name="thumbnails",
                   on_result=lambda images, g=generation: self._arrived(images, g),
                   on_error=lambda info, b=batch: self._failed(b, info))

    def _arrived(self, images: dict[int, Optional[QImage]], generation: int) -> None:
        if generation != self._generation:
            return
        self._in_flight.difference_update(images)
        for item_id, image in images.items():
            self._images[item_id] = image
            self._images.move_to_end(item_id)
        while len(self._images) > self.capacity:
            self._images.popitem(last=False)
        if images:
            self.ready.emit(list(images))
        if self._pending or (self._background and not self._in_flight):
            self._flush_timer.start()

    def _failed(self, batch: list[int], info: Any) -> None:
        log.warning("thumbnail batch failed: %s", info)
        self._in_flight.difference_update(batch)

    def wait(self, msecs: int = 10000) -> bool:
        return self.pool.waitForDone(msecs)

    @property
    def busy(self) -> bool:
        return bool(self._pending or self._in_flight or self._background)


_PLACEHOLDERS: dict[tuple[int, str], QPixmap] = {}


def placeholder(size: int, kind: str = "loading") -> QPixmap:
    """A neutral tile shown until the thumbnail arrives ("loading") or when there is none."""
    key = (size, kind)
    if key not in _PLACEHOLDERS:
        pix = QPixmap(size, size)
        pix.fill(QColor(58, 58, 62) if kind == "loading" else QColor(40, 40, 44))
        if kind != "loading":
            p = QPainter(pix)
            p.setPen(QColor(140, 140, 140))
            p.drawText(pix.rect(), Qt.AlignCenter, "no preview")
            p.end()
        _PLACEHOLDERS[key] = pix
    return _PLACEHOLDERS[key]
