"""Packaging: metadata in the current form, flavour requirements, desktop entry, icons,
`curator --version` text, and the app's smoke-exit mode that the bundle check uses."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _requirements(flavour: str) -> list[str]:
    out = subprocess.run([sys.executable, str(PACKAGING / "requirements.py"), flavour],
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def test_license_is_a_pep639_expression_with_its_file():
    data = pyproject()
    assert data["project"]["license"] == "Apache-2.0"
    for pattern in data["project"]["license-files"]:
        assert list(ROOT.glob(pattern)), pattern
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    requires = data["build-system"]["requires"]
    assert any(r.startswith("setuptools>=") and int(r.split(">=")[1].split(".")[0]) >= 77
               for r in requires), requires


def test_dependency_floors_are_the_versions_the_code_needs():
    deps = {d.split(">=")[0]: d for d in pyproject()["project"]["dependencies"]}
    # ClusteringInitMethod_AFK_MC2 arrived in faiss-cpu 1.14.2; load_weights, pretrained_text
    # and local-dir: in open_clip 3.0 (packaging/ci/lowest_versions.sh proves both).
    assert deps["faiss-cpu"] == "faiss-cpu>=1.14.2"
    assert deps["open-clip-torch"] == "open-clip-torch>=3.0"
    # 6.7.0 is the first PySide6 built against NumPy 2 (6.6.x print NumPy's "compiled using
    # NumPy 1.x ... may crash" traceback when shiboken loads); 6.12.0 is excluded (pyproject).
    assert deps["pyside6"] == "pyside6>=6.7,!=6.12.0"


@pytest.mark.slow
def test_wheel_metadata_has_the_license_expression_and_no_deprecation_warning(tmp_path):
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c",
         ("import sys; from setuptools import build_meta as b; "
          "print(b.build_wheel(sys.argv[1]))"), str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SetuptoolsDeprecationWarning" not in result.stderr
    wheel = tmp_path / result.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "ui/resources/curator-256.png" in names  # the app icon ships in the wheel


def test_lite_leaves_out_the_ml_runtimes_and_full_keeps_everything():
    lite, full = _requirements("lite"), _requirements("full")
    assert full == pyproject()["project"]["dependencies"]
    assert not [r for r in lite if r.startswith(("open-clip-torch", "transformers", "torch"))]
    assert set(lite) == {r for r in full
                         if not r.startswith(("open-clip-torch", "transformers"))}


def test_unknown_flavour_is_refused():
    result = subprocess.run([sys.executable, str(PACKAGING / "requirements.py"), "medium"],
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "medium" in result.stderr


def test_desktop_entry_follows_the_spec():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(PACKAGING / "linux" / "curator.desktop")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Name"] == "Curator"
    assert section["Exec"].split()[0] == "curator-gui" and section["Icon"] == "curator"
    assert section["Terminal"] == "false"
    assert section["Categories"].endswith(";") and "Graphics" in section["Categories"]
    # Wayland matches the window to the entry by this name (ui.app sets it).
    assert (ROOT / "ui" / "app.py").read_text().count('setDesktopFileName("curator")') == 1


def test_icons_render_from_the_svg(tmp_path, qapp):
    sys.path.insert(0, str(PACKAGING / "icons"))
    try:
        import make_icons
    finally:
        sys.path.remove(str(PACKAGING / "icons"))
    from PIL import Image

    written = make_icons.make_icons(tmp_path)
    assert {p.name for p in written} >= {"curator-512.png", "curator.ico", "curator.icns"}
    png = Image.open(tmp_path / "curator-48.png")
    assert png.size == (48, 48) and png.mode == "RGBA"
    assert png.getpixel((0, 0))[3] == 0 and png.getpixel((24, 24))[3] == 255
    ico = Image.open(tmp_path / "curator.ico")
    assert (256, 256) in ico.info["sizes"] and (16, 16) in ico.info["sizes"]
    assert Image.open(tmp_path / "curator.icns").size[0] >= 256


def test_spec_and_scripts_parse():
    compile((PACKAGING / "curator.spec").read_text(), "curator.spec", "exec")
    for script in ("build.sh", "ci/bundle_smoke.sh", "ci/lowest_versions.sh",
                   "ci/tool_install.sh", "ci/pipx_install.sh",
                   "linux/appimage.sh", "linux/install-desktop-entry.sh", "linux/AppRun",
                   "macos/build.sh"):
        path = PACKAGING / script
        assert os.access(path, os.X_OK), f"{script} is not executable"
        subprocess.run(["sh" if script.endswith("AppRun") else "bash", "-n", str(path)],
                       check=True)


def test_version_text_names_app_python_libraries_and_models(monkeypatch, tmp_path):
    from curator import __version__
    from curator.version import version_report

    monkeypatch.setenv("CURATOR_CONFIG", str(tmp_path / "config.toml"))
    (tmp_path / "config.toml").write_text('model = "classic"\naudio_model = "classic"\n')
    report = version_report()
    text = report.text()
    assert text.splitlines()[0] == f"curator {__version__} (python package)"
    assert f"Python {sys.version.split()[0]}" in text
    from importlib.metadata import version
    assert f"numpy {version('numpy')}" in text and f"faiss-cpu {version('faiss-cpu')}" in text
    assert "default image/video model: classic" in text
    assert "faiss-gpu-cu12" not in text  # not installed: left out unless asked
    assert "faiss-gpu-cu12 (not installed)" in "\n".join(report.lines(all_libraries=True))


def test_version_inside_a_bundle_names_the_flavour(monkeypatch, tmp_path):
    from curator import version

    (tmp_path / version.FLAVOUR_FILE).write_text("lite\n")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert version.bundle_flavour() == "lite"
    assert "(desktop bundle, lite)" in version.version_text().splitlines()[0]


def test_version_click_callback_prints_the_report():
    import click
    from click.testing import CliRunner

    from curator.version import click_callback, version_text

    @click.command()
    @click.option("--version", is_flag=True, expose_value=False, is_eager=True,
                  callback=click_callback)
    def cmd() -> None:
        click.echo("ran")

    result = CliRunner().invoke(cmd, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == version_text()
    assert CliRunner().invoke(cmd, []).output.strip() == "ran"


def _gui(args: list[str], tmp_path: Path, seconds: str = "3") -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "CURATOR_GUI_EXIT_AFTER": seconds,
           "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(ROOT), "CURATOR_CONFIG": str(tmp_path / "config.toml")}
    return subprocess.run([sys.executable, "-m", "ui.app", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.slow
def test_gui_smoke_exit_is_ok_on_a_project_and_fails_on_a_broken_one(tmp_path):
    import shutil

    project = tmp_path / "project"
    shutil.copytree(ROOT / "tests" / "data" / "project-0.1.0", project)
    ok = _gui([str(project)], tmp_path, seconds="6")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert f"curator-gui smoke: ok ({project})" in ok.stderr
    bad = _gui([str(tmp_path / "not-a-project")], tmp_path)
    assert bad.returncode == 1
    assert "error shown" in bad.stderr and "the project did not open" in bad.stderr


def test_without_open_clip_a_clip_model_is_unavailable_not_a_crash(monkeypatch):
    # The lite bundle has no torch or open_clip: the demo and indexing must fall back to
    # `classic` on EmbedderUnavailable instead of dying on an ImportError.
    from indexing.embedders import EmbedderUnavailable
    from indexing.embedders.clip_source import resolve_clip_source

    monkeypatch.setitem(sys.modules, "open_clip", None)
    monkeypatch.setitem(sys.modules, "open_clip.pretrained", None)
    with pytest.raises(EmbedderUnavailable, match="open-clip-torch is not installed"):
        resolve_clip_source("ViT-B-32/laion2b_s34b_b79k", offline=True)
