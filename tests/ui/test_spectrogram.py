"""The preview's spectrogram: time and frequency axes, and a short clip spans the whole width
(it is not padded to an analysis window)."""

from __future__ import annotations

import numpy as np
import pytest

TIMEOUT = 20000


def _rgb(image, x, y):
    c = image.pixelColor(int(round(x)), int(round(y)))
    return np.array([c.red(), c.green(), c.blue()], float)


def _loaded(qtbot, media, tmp_path, seconds, freq=1000.0, size=(640, 300)):
    from ui.spectrogram import SpectrogramView

    wav = media.wav(tmp_path / "tone.wav", seconds=seconds, freq=freq)
    view = SpectrogramView()
    qtbot.addWidget(view)
    view.resize(*size)
    view.show()
    with qtbot.waitSignal(view.ready, timeout=TIMEOUT):
        view.load(str(wav))
    return view


def test_a_short_clip_spans_the_plot_with_seconds_and_hertz_axes(qtbot, media, tmp_path):
    view = _loaded(qtbot, media, tmp_path, seconds=1.6)
    spec = view.spectrogram
    assert spec is not None and spec.seconds == pytest.approx(1.6, abs=0.01)
    times = [label for label, _ in view.time_labels()]
    assert times[0] == "0 s" and "1.5 s" in times
    assert all(float(t.split()[0]) <= 1.6 for t in times)  # the axis ends with the clip
    freqs = dict(view.freq_labels())
    assert {"500 Hz", "1 kHz", "5 kHz"} <= set(freqs) and "10 kHz" not in freqs  # 16 kHz file
    assert freqs["500 Hz"] > freqs["1 kHz"] > freqs["5 kHz"]  # low frequencies at the bottom

    image = view.grab().toImage()
    plot = view.plot_rect()
    tone_y, quiet_y = view.y_of(1000.0), view.y_of(5000.0)
    # The 1 kHz tone runs from the left edge of the plot to its right edge: the 1.6 s clip fills
    # the width (a clip padded to a 5 s window would leave the right two thirds dark).
    for share in (0.05, 0.5, 0.97):
        x = plot.left() + share * plot.width()
        bright, dark = _rgb(image, x, tone_y), _rgb(image, x, quiet_y)
        assert bright.sum() > dark.sum() + 150, (share, bright, dark)
    # The time labels sit under the plot, the frequency labels left of it.
    xs = [x for _, x in view.time_labels()]
    assert xs[0] == pytest.approx(plot.left()) and xs[-1] <= plot.right() + 1
    assert view.x_of(1.5) > plot.left() + 0.9 * plot.width()


def test_playhead_and_click_to_seek(qtbot, media, tmp_path):
    from PySide6.QtCore import QPoint, Qt

    view = _loaded(qtbot, media, tmp_path, seconds=2.0)
    plot = view.plot_rect()
    with qtbot.waitSignal(view.seek, timeout=TIMEOUT) as sought:
        qtbot.mouseClick(view, Qt.LeftButton, pos=QPoint(plot.left() + plot.width() // 2,
                                                         plot.center().y()))
    assert sought.args[0] == pytest.approx(1.0, abs=0.05)
    view.set_position(1.0)
    image = view.grab().toImage()
    x = view.x_of(1.0)
    assert _rgb(image, x, view.y_of(5000.0)).min() > 200  # a white playhead line


def test_a_file_without_sound_says_so(qtbot, tmp_path):
    from ui.spectrogram import SpectrogramView

    bad = tmp_path / "not_audio.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    view = SpectrogramView()
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.ready, timeout=TIMEOUT):
        view.load(str(bad))
    assert view.spectrogram is None and view.message.startswith("no spectrogram:")
