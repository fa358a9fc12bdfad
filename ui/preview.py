"""The preview: one item large, with its file facts, its path and its label history.

Images show with zoom, audio as its spectrogram with playback, video with playback and scrubbing;
the path opens the containing folder.

Media playback is created only when an audio or video item is shown, and a machine without a
sound device (or without a multimedia backend) gets a clear note instead of an error: the image,
facts and history still show.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

from PySide6.QtCore import QRectF, Qt, QThreadPool, QUrl, Signal
from PySide6.QtGui import (
    QDesktopServices,
    QImage,
    QImageReader,
    QKeyEvent,
    QPainter,
    QPixmap,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSlider,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ui.session import Session
from ui.spectrogram import SpectrogramView
from ui.thumbnails import ThumbnailCache
from ui.workers import submit

log = logging.getLogger(__name__)

MAX_PREVIEW_SIDE = 4096
FACTS = ("modality", "format", "width", "height", "duration", "fps", "sample_rate", "channels",
         "codec", "size", "mtime", "status", "error")


def _load_image(path: str) -> Optional[QImage]:
    """Read an image file, bounded in size, with EXIF orientation applied (pool thread)."""
    reader = QImageReader(path)
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and max(size.width(), size.height()) > MAX_PREVIEW_SIDE:
        reader.setScaledSize(size.scaled(MAX_PREVIEW_SIDE, MAX_PREVIEW_SIDE, Qt.KeepAspectRatio))
    image = reader.read()
    return None if image.isNull() else image


class ZoomView(QGraphicsView):
    """An image with wheel zoom, drag to pan, 0 to fit, 1 for 100 %."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.SmoothTransformation)
        self.scene().addItem(self._item)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setRenderHint(QPainter.SmoothPixmapTransform, True)
        self.setBackgroundBrush(Qt.black)
        self.zoom_factor = 1.0

    def set_image(self, image: Optional[QImage]) -> None:
        pix = QPixmap.fromImage(image) if image is not None else QPixmap()
        self._item.setPixmap(pix)
        self.scene().setSceneRect(QRectF(pix.rect()))
        self.fit()

    def fit(self) -> None:
        if not self._item.pixmap().isNull():
            self.fitInView(self._item, Qt.KeepAspectRatio)
            self.zoom_factor = self.transform().m11()

    def zoom(self, factor: float) -> None:
        self.scale(factor, factor)
        self.zoom_factor = self.transform().m11()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt API
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom(1.2 ** steps)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key_0:
            self.fit()
        elif event.key() == Qt.Key_1:
            self.resetTransform()
            self.zoom_factor = 1.0
        elif event.key() in (Qt.Key_Plus, Qt.Key_Equal):
            self.zoom(1.25)
        elif event.key() == Qt.Key_Minus:
            self.zoom(0.8)
        else:
            super().keyPressEvent(event)


class MediaPane(QWidget):
    """Playback of audio (over its spectrogram, with axes and a playhead) or video (QVideoWidget,
    its poster frame until it plays), with a scrub bar."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.player: Any = None
        self.audio: Any = None
        self.video_widget: Any = None
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.play_button = QPushButton("Play")
        self.play_button.clicked.connect(self.toggle)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.sliderMoved.connect(self._seek)
        self.time_label = QLabel("0:00 / 0:00")
        self.stage = QStackedWidget()
        self.spectrogram = SpectrogramView()
        self.spectrogram.seek.connect(lambda s: self._seek(int(s * 1000)))
        self.poster = ZoomView()
        self.stage.addWidget(self.spectrogram)
        self.stage.addWidget(self.poster)
        controls = QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.time_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stage, 1)
        layout.addLayout(controls)
        layout.addWidget(self.note)

    def _ensure_player(self, video: bool) -> bool:
        try:
            from PySide6.QtMultimedia import QAudioOutput, QMediaDevices, QMediaPlayer
        except ImportError as exc:  # a Qt build without multimedia
            self.note.setText(f"Playback is not available here ({exc}).")
            return False
        if self.player is None:
            self.player = QMediaPlayer(self)
            self.player.positionChanged.connect(self._position)
            self.player.durationChanged.connect(self._duration)
            self.player.errorOccurred.connect(self._player_error)
            self.player.playbackStateChanged.connect(self._state)
            if QMediaDevices.audioOutputs():
                self.audio = QAudioOutput(self)
                self.player.setAudioOutput(self.audio)
        if not QMediaDevices.audioOutputs():
            self.note.setText("No sound device found: playback is silent. Video frames and "
                              "the spectrogram still show.")
        else:
            self.note.setText("")
        if video:
            if self.video_widget is None:
                from PySide6.QtMultimediaWidgets import QVideoWidget

                self.video_widget = QVideoWidget()
                self.stage.addWidget(self.video_widget)
            self.player.setVideoOutput(self.video_widget)
            # The poster frame (the thumbnail) shows until playback starts.
            self.stage.setCurrentWidget(self.poster)
        else:
            self.player.setVideoOutput(None)
            self.stage.setCurrentWidget(self.spectrogram)
        return True

    def show_media(self, path: str, video: bool, poster: Optional[QImage]) -> None:
        """Show a video (its poster frame until it plays) or a sound (its spectrogram)."""
        self.stop()
        if video:
            self.spectrogram.clear()
            self.poster.set_image(poster)
            self.stage.setCurrentWidget(self.poster)
        else:
            self.spectrogram.load(path)
            self.stage.setCurrentWidget(self.spectrogram)
        if not self._ensure_player(video):
            return
        self.player.setSource(QUrl.fromLocalFile(path))

    def toggle(self) -> None:
        if self.player is None:
            return
        from PySide6.QtMultimedia import QMediaPlayer

        if self.player.playbackState() == QMediaPlayer.PlayingState:
            self.player.pause()
        else:
            if self.video_widget is not None and self.player.videoOutput() is self.video_widget:
                self.stage.setCurrentWidget(self.video_widget)
            self.player.play()

    def stop(self) -> None:
        if self.player is not None:
            self.player.stop()

    def release(self) -> None:
        """Stop and let go of the file (the backend's decoding threads end with it)."""
        if self.player is not None:
            self.player.stop()
            self.player.setSource(QUrl())

    def _seek(self, value: int) -> None:
        if self.player is not None:
            self.player.setPosition(value)

    def _position(self, ms: int) -> None:
        if not self.slider.isSliderDown():
            self.slider.setValue(ms)
        if self.stage.currentWidget() is self.spectrogram:
            self.spectrogram.set_position(ms / 1000)
        self.time_label.setText(f"{_clock(ms)} / {_clock(self.slider.maximum())}")

    def _duration(self, ms: int) -> None:
        self.slider.setRange(0, max(0, ms))
        self.time_label.setText(f"{_clock(self.slider.value())} / {_clock(ms)}")

    def _state(self, state: Any) -> None:
        from PySide6.QtMultimedia import QMediaPlayer

        self.play_button.setText("Pause" if state == QMediaPlayer.PlayingState else "Play")

    def _player_error(self, error: Any, text: str = "") -> None:
        self.note.setText(f"Playback failed: {text or error}. The file facts below still hold.")


def _clock(ms: int) -> str:
    s = max(0, int(ms)) // 1000
    return f"{s // 60}:{s % 60:02d}"


class PreviewPane(QWidget):
    """One item: media, facts, path and history, all read in the background.

    Signals:
        more_like_this(int): search for items like this one.
    """

    more_like_this = Signal(int)
    loaded = Signal(int)

    def __init__(self, session: Session, thumbs: ThumbnailCache, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        self.thumbs = thumbs
        self.item_id: Optional[int] = None
        self._full_image = False
        self.item: dict[str, Any] = {}
        self.history: list[Any] = []
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.stage = QStackedWidget()
        self.image_view = ZoomView()
        self.media = MediaPane()
        self.stage.addWidget(self.image_view)
        self.stage.addWidget(self.media)
        self.title = QLabel("")
        self.title.setObjectName("previewTitle")
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.path_label = QLabel("")
        self.path_label.setWordWrap(True)
        self.path_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.open_folder = QPushButton("Open containing folder")
        self.open_folder.clicked.connect(self.reveal)
        self.like_button = QPushButton("More like this")
        self.like_button.clicked.connect(lambda: self.item_id is not None and
                                         self.more_like_this.emit(self.item_id))
        self.facts = QFormLayout()
        self.history_list = QListWidget()
        self.history_list.setObjectName("history")
        self.history_list.setWordWrap(True)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.title)
        side_layout.addWidget(self.path_label)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_folder)
        buttons.addWidget(self.like_button)
        side_layout.addLayout(buttons)
        side_layout.addLayout(self.facts)
        side_layout.addWidget(QLabel("Label history (newest first)"))
        side_layout.addWidget(self.history_list, 1)
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self.stage)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)
        thumbs.ready.connect(self._thumbs_ready)

    def _thumbs_ready(self, ids: list[int]) -> None:
        # The thumbnail (an audio item's spectrogram, a video's poster) arrived after the item.
        if self.item_id not in ids:
            return
        image = self.thumbs.image(self.item_id)
        if self.stage.currentWidget() is self.media:
            if self.media.stage.currentWidget() is self.media.poster:
                self.media.poster.set_image(image)
        elif not self._full_image:
            self.image_view.set_image(image)

    def show_item(self, item_id: int) -> None:
        """Show an item: thumbnail at once, then the full media, facts and history."""
        self.item_id = item_id
        self._full_image = False
        self.media.stop()
        self.title.setText(f"Item {item_id} · loading…")
        thumb = self.thumbs.image(item_id)
        self.image_view.set_image(thumb)
        self.stage.setCurrentWidget(self.image_view)
        self.session.read(lambda p: (p.item(item_id), p.history(item_id)), key="preview",
                          name="item", on_result=lambda r: self._loaded(item_id, *r))

    def _loaded(self, item_id: int, item: dict[str, Any], history: list[Any]) -> None:
        if item_id != self.item_id:
            return
        self.item = item
        self.history = list(history)
        path = item.get("abs_path", "")
        modality = item.get("modality") or "?"
        self.title.setText(f"Item {item_id} · {modality} · {os.path.basename(path)}")
        self.path_label.setText(path)
        while self.facts.rowCount():
            self.facts.removeRow(0)
        for key in FACTS:
            value = item.get(key)
            if value not in (None, ""):
                self.facts.addRow(key, QLabel(_fact(key, value)))
        self.history_list.clear()
        for ev in self.history:
            label = ev.label or ev.action
            undone = " (undone)" if ev.undone else ""
            note = f" — {ev.note}" if ev.note else ""
            self.history_list.addItem(f"{ev.action} → {label}{undone}\n"
                                      f"{ev.time[:19].replace('T', ' ')} · {ev.source} · "
                                      f"{ev.annotator}{note}")
        if not self.history:
            self.history_list.addItem("never labelled")
        if modality == "image" and path and os.path.exists(path):
            submit(_load_image, path, pool=self.pool, name="preview image",
                   on_result=lambda image: self._image_loaded(item_id, image))
        elif modality in ("audio", "video") and path and os.path.exists(path):
            self.stage.setCurrentWidget(self.media)
            self.media.show_media(path, modality == "video", self.thumbs.image(item_id))
        elif path and not os.path.exists(path):
            self.title.setText(f"Item {item_id} · file not found (moved or deleted?)")
        self.loaded.emit(item_id)

    def _image_loaded(self, item_id: int, image: Optional[QImage]) -> None:
        if item_id == self.item_id and image is not None:
            self._full_image = True
            self.image_view.set_image(image)

    def reveal(self) -> None:
        path = self.item.get("abs_path")
        if path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(path)))

    def stop(self) -> None:
        self.media.stop()


def _fact(key: str, value: Any) -> str:
    if key == "size" and isinstance(value, (int, float)):
        size = float(value)
        for unit in ("B", "KB", "MB", "GB"):
            if size < 1024 or unit == "GB":
                return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
            size /= 1024
    if key == "duration" and isinstance(value, (int, float)):
        return f"{value:.2f} s"
    if key == "mtime" and isinstance(value, (int, float)):
        import datetime

        return datetime.datetime.fromtimestamp(value).isoformat(sep=" ", timespec="seconds")
    return str(value)


class PreviewWindow(QDialog):
    """The preview in its own window; Esc or space closes, ←/→ step through the grid's items."""

    step = Signal(int)

    def __init__(self, session: Session, thumbs: ThumbnailCache, parent: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preview")
        self.setModal(False)
        self.pane = PreviewPane(session, thumbs, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.pane)
        self.resize(1100, 720)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key_Space:
            self.close()
        elif event.key() in (Qt.Key_Right, Qt.Key_L):
            self.step.emit(1)
        elif event.key() in (Qt.Key_Left, Qt.Key_H):
            self.step.emit(-1)
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.pane.media.release()
        super().closeEvent(event)
