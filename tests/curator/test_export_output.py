"""Safe output: foreign files refused and listed, --force, a symlinked OUT keeps its link, and a
run killed at any point leaves one complete export after the next run, with no leftovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from curator.export import ForeignFiles, export, is_export
from curator.export.output import FILES_LIST
from curator.project import Project
from curator.scan import ScanOptions


@pytest.fixture
def project(tmp_path, media):
    src = tmp_path / "media"
    for i in range(12):
        media.image(src / ("a" if i % 2 else "b") / f"{i}.png", size=(10, 10), seed=i)
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.add_label("a")
        proj.add_label("b")
        for folder in ("a", "b"):
            proj.label_items([i["id"] for i in proj.items() if i["path"].startswith(folder)],
                             folder)
        yield proj


def siblings(path: Path) -> list[str]:
    return sorted(os.listdir(path.parent))


def test_files_the_previous_export_did_not_write_are_refused_and_listed(project, tmp_path):
    out = tmp_path / "out"
    export(project, "imagefolder", out)
    listed = (out / FILES_LIST).read_text().splitlines()
    assert "manifest.json" in listed and "README.md" in listed
    (out / "model.pt").write_bytes(b"weights")
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "e1.ckpt").write_bytes(b"x")
    with pytest.raises(ForeignFiles) as caught:
        export(project, "imagefolder", out)
    assert caught.value.files == ["checkpoints/e1.ckpt", "model.pt"]
    assert "model.pt" in str(caught.value)
    assert (out / "model.pt").read_bytes() == b"weights"
    export(project, "jsonl", out, force=True)
    assert not (out / "model.pt").exists() and (out / "items.jsonl").is_file()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.docx").write_text("precious")
    with pytest.raises(ForeignFiles, match="not a Curator export"):
        export(project, "jsonl", busy)
    assert (busy / "thesis.docx").read_text() == "precious"


def test_a_previous_export_is_replaced_without_leftovers(project, tmp_path):
    out = tmp_path / "out"
    export(project, "imagefolder", out)
    export(project, "jsonl", out)
    assert sorted(p.name for p in out.iterdir()) == [FILES_LIST, "items.jsonl", "manifest.json"]
    assert siblings(out) == ["media", "out", "proj"]


def test_a_symlinked_out_keeps_its_link(project, tmp_path):
    real = tmp_path / "disk" / "exports"
    real.mkdir(parents=True)
    link = tmp_path / "out"
    link.symlink_to(real, target_is_directory=True)
    export(project, "jsonl", link)
    export(project, "parquet", link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert (real / "items.parquet").is_file() and not (real / "items.jsonl").exists()
    assert siblings(real) == ["exports"] and siblings(link) == ["disk", "media", "out", "proj"]


def test_a_failure_keeps_the_previous_export(project, tmp_path, monkeypatch):
    import curator.export.tabular as tabular

    out = tmp_path / "out"
    export(project, "csv", out)
    before = (out / "items.csv").read_text()

    def broken(ctx):
        raise OSError(5, "input/output error")

    monkeypatch.setattr(tabular, "write_csv", broken)
    from curator.export import EXPORTERS
    from curator.export.core import Exporter

    monkeypatch.setitem(EXPORTERS, "csv", Exporter("csv", broken, "broken"))
    with pytest.raises(OSError):
        export(project, "csv", out)
    assert (out / "items.csv").read_text() == before and is_export(out)
    assert siblings(out) == ["media", "out", "proj"]


_CHILD = textwrap.dedent("""
    import os, sys, time
    import curator.export.output as output
    from curator.export import export
    from curator.project import Project

    stage, proj, out = sys.argv[1], sys.argv[2], sys.argv[3]
    real_rename = output._rename
    calls = []

    def rename(a, b):
        calls.append((a, b))
        if stage == "between-renames" and len(calls) == 2:
            os.kill(os.getpid(), 9)  # the old export is aside, the new one not yet in place
        return real_rename(a, b)

    output._rename = rename
    if stage == "while-writing":
        import curator.export.tabular as tabular
        from curator.export import EXPORTERS
        from curator.export.core import Exporter

        def slow(ctx):
            with ctx.open("items.jsonl") as fh:
                fh.write("partial")
                fh.flush()
                print("writing", flush=True)
                time.sleep(60)

        EXPORTERS["jsonl"] = Exporter("jsonl", slow, "slow")
    with Project.open(proj) as p:
        export(p, "jsonl", out)
""")


@pytest.mark.parametrize("stage", ["while-writing", "between-renames"])
def test_kill_during_export_then_rerun_gives_one_complete_export(project, tmp_path, stage):
    out = tmp_path / "out"
    export(project, "csv", out)  # a previous export the killed run replaces
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path.cwd()), *sys.path]))
    child = subprocess.Popen([sys.executable, str(script), stage, str(project.root), str(out)],
                             stdout=subprocess.PIPE, text=True, env=env)
    if stage == "while-writing":
        assert child.stdout.readline().strip() == "writing"
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=120)
    assert child.returncode == -9
    left = [n for n in siblings(out) if n not in ("media", "proj", "child.py", "out")]
    assert left  # the kill did leave something behind
    report = export(project, "jsonl", out)  # the next run finishes or rolls back, then exports
    assert siblings(out) == ["child.py", "media", "out", "proj"]
    assert sorted(p.name for p in out.iterdir()) == [FILES_LIST, "items.jsonl", "manifest.json"]
    assert len((out / "items.jsonl").read_text().splitlines()) == 12 == report.items
    assert json.loads((out / "manifest.json").read_text())["format"] == "jsonl"
    assert any("interrupted" in note for note in report.notes)
