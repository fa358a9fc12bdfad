"""`make screenshots`: PNGs of the app's main views on the generated sample corpus, for the docs.

    python -m ui.screenshots OUT_DIR [--work DIR] [--items N]

Builds (or reuses) a project on the sample corpus with the weight-free classic embedder, adds a
small taxonomy and a few decisions so the views have something to show, then opens the window
and writes screenshot-queue.png, -group.png, -map.png, -preview.png and -taxonomy.png. Run it
under a display (xvfb-run in the Makefile) or with QT_QPA_PLATFORM=offscreen.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Label name, hotkey, colour, and the sample corpus folder whose groups get it.
TAXONOMY = (("red disc", "1", "#d62728", "red_discs"), ("blue square", "2", "#1f77b4",
                                                         "blue_squares"),
            ("green triangle", "3", "#2ca02c", "green_triangles"),
            ("yellow stripes", "4", "#bcbd22", "yellow_stripes"),
            ("tone", "5", "#9467bd", "tones"))


def build_project(work: Path, items: int) -> Path:
    """The sample corpus, indexed with `classic`, grouped, mapped and partly labelled."""
    from curator.pipeline import IndexOptions, index
    from curator.project import Project
    from curator.sample_corpus import write_sample_corpus

    folder = work / "project"
    if (folder / "catalog.db").exists():
        with Project.open(folder) as project:
            try:
                project.map()
                return folder
            except Exception:  # noqa: BLE001 - an unfinished earlier build: make it again
                log.info("rebuilding the screenshot project")
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    write_sample_corpus(work / "corpus", items=items, seed=0)
    with Project.create(folder, [work / "corpus"]) as project:
        project.set_annotator("screenshots")
        # The user's settings for how to run, but always the weight-free models: the pictures
        # must not depend on which weights this machine has.
        index(project, IndexOptions.from_settings(model="classic", audio_model="classic"))
        for name, key, colour, _ in TAXONOMY:
            project.add_label(name, colour=colour, hotkey=key)
        _decide_some(project)
    return folder


def _decide_some(project: Any) -> None:
    """Label the pure groups of three classes (by the corpus folder of their items), as a
    person would after a first look, so the views show decided and undecided groups."""
    from collections import Counter

    names = {folder: name for name, _, _, folder in TAXONOMY[:3]}
    for g in project.groups(order="size"):
        folders = Counter(Path(project.item(i)["path"]).parent.name
                          for i in project.group(g.group_id).items)
        folder, count = folders.most_common(1)[0]
        if folder in names and count == g.size:
            project.label_group(g.group_id, names[folder])


def _wait(app: Any, condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    app.processEvents()
    return False


def _save(widget: Any, path: Path) -> None:
    pixmap = widget.grab()
    if not pixmap.save(str(path)):
        raise RuntimeError(f"could not write {path}")
    log.info("wrote %s (%dx%d)", path, pixmap.width(), pixmap.height())


def _an_image(win: Any) -> Any:
    """An image item of a labelled group (the preview shows an image best)."""
    project = win.session.project
    for g in project.groups(order="size"):
        if g.status == "labelled":
            for item_id in project.group(g.group_id).items:
                if project.item(item_id)["modality"] == "image":
                    return item_id
    return win.group.current_item()


def take(out: Path, project_dir: Path) -> list[Path]:
    """Open the window on the project and save one PNG per main view."""
    from PySide6.QtCore import QSettings

    from ui.app import application
    from ui.main_window import MainWindow

    app = application()
    # Screenshots must not depend on (or change) the user's own window settings.
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope,
                      tempfile.mkdtemp(prefix="curator-shots-settings-"))
    out.mkdir(parents=True, exist_ok=True)
    win = MainWindow()
    win.resize(1400, 880)
    win.show()
    ready = []
    win.project_ready.connect(lambda: ready.append(True))
    win.open_project(str(project_dir))
    _wait(app, lambda: bool(ready))
    _wait(app, lambda: bool(win.labels))
    written = []

    win.tabs.setCurrentWidget(win.queue)
    win.queue.table.resizeColumnsToContents()
    _wait(app, lambda: False, 0.3)
    written.append(out / "screenshot-queue.png")
    _save(win, written[-1])

    first = win.queue.next_undecided(None)
    if first is not None:
        win.open_group(first)
        _wait(app, lambda: win.group.model.rowCount() > 0)
        win.group.grid.selectionModel().clearSelection()
        if win.group.model.rowCount() > 3:
            win.group.model.toggle_excluded([win.group.model.item_at(2)])
        _wait(app, lambda: not win.thumbs.busy)
        _wait(app, lambda: False, 0.3)
    written.append(out / "screenshot-group.png")
    _save(win, written[-1])

    win.tabs.setCurrentWidget(win.map)
    _wait(app, lambda: win.map.canvas.data is not None and not win.map.canvas.busy, 60)
    canvas = win.map.canvas
    if canvas.data is not None and len(canvas.data.ids):
        from PySide6.QtCore import QPointF

        w, h = canvas.width(), canvas.height()
        canvas.lasso_select([QPointF(w * 0.30, h * 0.30), QPointF(w * 0.55, h * 0.25),
                             QPointF(w * 0.60, h * 0.55), QPointF(w * 0.35, h * 0.60)])
        _wait(app, lambda: len(canvas.selected) > 0 and not canvas.busy, 10)
    _wait(app, lambda: False, 0.3)
    written.append(out / "screenshot-map.png")
    _save(win, written[-1])

    item = _an_image(win)
    if item is not None:
        win.preview_item(item)
        preview = win.preview_window()
        _wait(app, lambda: preview.pane.item.get("id") == item, 10)
        _wait(app, lambda: False, 0.5)
        written.append(out / "screenshot-preview.png")
        _save(preview, written[-1])
        preview.close()

    win.taxonomy_dialog()
    _wait(app, lambda: win._taxonomy is not None and win._taxonomy.tree.topLevelItemCount() > 0,
          10)
    written.append(out / "screenshot-taxonomy.png")
    _save(win._taxonomy, written[-1])
    win._taxonomy.close()
    win.wait_idle(10000)
    win.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNGs (docs)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) /
                        "curator-screenshots", help="where the sample project is kept")
    parser.add_argument("--items", type=int, default=300)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    project = build_project(args.work, args.items)
    written = take(args.out, project)
    for path in written:
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
