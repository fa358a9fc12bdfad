"""The command line: help for every command, one-line errors, JSON output, a light start-up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from curator.cli import cli, main


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
        raise SystemExit(0)
    out = capsys.readouterr()
    return info.value.code or 0, out.out, out.err


def test_start_up_imports_nothing_heavy():
    code = (
        "import sys, curator.cli\n"
        "heavy = ['torch', 'open_clip', 'faiss', 'umap', 'PySide6', 'av', 'numpy', 'PIL',"
        " 'transformers', 'sqlite_utils',"
        " 'curator.version']\n"  # --version's report (importlib.metadata): only when asked
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help(capsys, command):
    code, out, err = run(capsys, command, "--help")
    assert code == 0
    assert "Usage: curator" in out and len(out.splitlines()) > 3


def test_wrong_flag_is_one_error_line(capsys, tmp_path):
    code, out, err = run(capsys, "scan", str(tmp_path), "--frobnicate")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--frobnicate" in lines[0] and lines[0].startswith("error:")


def test_unknown_command_is_one_error_line(capsys):
    code, out, err = run(capsys, "scna")
    assert code == 2 and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["scan", "status", "runs"])
def test_wrong_project_path_is_one_error_line(capsys, tmp_path, command):
    code, out, err = run(capsys, command, str(tmp_path / "nowhere"))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "nowhere" in lines[0] and "curator init" in lines[0]


def test_not_a_project_folder(capsys, tmp_path):
    code, out, err = run(capsys, "status", str(tmp_path))
    assert code == 1 and "not a Curator project" in err


def test_init_with_missing_source(capsys, tmp_path):
    code, out, err = run(capsys, "init", str(tmp_path / "p"), "--source", str(tmp_path / "no"))
    assert code == 1 and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()


def test_init_scan_status_json(capsys, tmp_path, media):
    src = tmp_path / "m"
    media.image(src / "a.jpg", fmt="JPEG")
    (src / "bad.jpg").write_bytes(b"")
    assert run(capsys, "init", str(tmp_path / "p"), "--source", str(src))[0] == 0
    code, out, err = run(capsys, "scan", str(tmp_path / "p"), "--workers", "0", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["new"] == 2 and report["errors"] == 1
    code, out, err = run(capsys, "status", str(tmp_path / "p"), "--json")
    status = json.loads(out)
    assert status["counts"]["image"] == {"ok": 1, "error": 1}
    assert status["errors"][0]["path"] == "bad.jpg" and "empty" in status["errors"][0]["error"]
    code, out, err = run(capsys, "status", str(tmp_path / "p"))
    assert "bad.jpg: empty file" in out
    code, out, err = run(capsys, "runs", str(tmp_path / "p"), "--json")
    assert json.loads(out)[0]["kind"] == "scan"


def test_doctor_reports_the_machine(capsys):
    code, out, err = run(capsys, "doctor", "--json")
    report = json.loads(out)
    assert report["python"]["version"].startswith("3.")
    assert "torch" in report["models"] and "faiss" in report["faiss"]
    assert "PyAV" in report["media"]
