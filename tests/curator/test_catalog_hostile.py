"""The catalog tells you when it is hurt: full disk, read-only, corrupt; one line, no write."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from curator.project import Project
from curator.scan import ScanOptions

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, check_rc: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "curator.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc


def _one_error_line(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def labelled(tmp_path, media):
    """A small project with scanned images and one label event, closed cleanly."""
    src = tmp_path / "media"
    for i in range(6):
        media.image(src / f"{i}.png", seed=i, color=(40 * i, 90, 30))
    root = tmp_path / "proj"
    with Project.create(root, [src]) as project:
        project.scan(ScanOptions(workers=0))
        project.embed("classic", "classic", workers=0)
        project.add_label("cat")
        project.label_items([1, 2], "cat")
    return root, src


# --- mounts (root) -----------------------------------------------------------------------------


def _can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def _tmpfs(where: Path, size: str):
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                   check=True, capture_output=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def _mount_works(tmp_path: Path) -> bool:
    if not _can_mount():
        return False
    probe = tmp_path / "probe-mount"
    try:
        with _tmpfs(probe, "1m"):
            return True
    except (subprocess.CalledProcessError, OSError):
        return False


def _fill(folder: Path) -> None:
    with open(folder / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)


# --- full disk ---------------------------------------------------------------------------------


def test_full_disk_during_scan_and_label_is_one_clear_line(tmp_path, labelled, media):
    root, src = labelled
    for i in range(40):  # new files for the scan to write
        media.image(src / "more" / f"{i}.png", seed=100 + i, size=(80, 60))
    if not _mount_works(tmp_path):
        pytest.skip("needs root and tmpfs mounts; test_full_disk_simulated_without_mounts "
                    "checks the same behaviour with SQLite's error raised in process")
    disk = tmp_path / "disk"
    with _tmpfs(disk, "3m"):
        shutil.copytree(root, disk / "proj")
        _fill(disk)
        line = _one_error_line(_cli("scan", disk / "proj", "--workers", "0"), "disk", "full",
                               "Free space")
        assert "catalog.db" in line or "No space" in line
        _one_error_line(_cli("label", disk / "proj", "--items", "3", "--label", "cat"), "full")
        _one_error_line(_cli("embed", disk / "proj", "--model", "classic", "--audio-model",
                             "classic", "--workers", "0"), "full")
        (disk / "filler").unlink()
        # With space again, the same project works and lost nothing.
        _cli("check", disk / "proj", check_rc=0)
        proc = _cli("label", disk / "proj", "--items", "3", "--label", "cat", check_rc=0)
        assert "Traceback" not in proc.stderr


def test_full_disk_simulated_without_mounts(labelled, monkeypatch, capsys):
    """The same failure raised by SQLite itself, in process (no privileges needed)."""
    from curator.catalog import Catalog
    from curator.cli import main

    root, _ = labelled

    def full(self):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Catalog, "write", full)
    with pytest.raises(SystemExit) as info:
        main(["label", str(root), "--items", "3", "--label", "cat"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1
    assert "disk holding" in err and "Free space" in err and str(root / "catalog.db") in err


# --- read-only ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _read_only(tmp_path: Path, root: Path):
    """The project on a read-only mount (root), or in a read-only folder (other users)."""
    if _mount_works(tmp_path):
        disk = tmp_path / "ro"
        with _tmpfs(disk, "16m"):
            shutil.copytree(root, disk / "proj")
            subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
            yield disk / "proj"
        return
    if os.geteuid() == 0:
        pytest.skip("root without mounts cannot make a read-only folder (root ignores modes); "
                    "test_read_only_forced_open checks the read-only open in process")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield root
    finally:
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_read_only_project_can_be_read_and_exported_but_not_written(tmp_path, labelled):
    root, _ = labelled
    with _read_only(tmp_path, root) as ro:
        before = _digest(ro / "catalog.db")
        status = _cli("status", ro, check_rc=0)
        assert "image" in status.stdout
        history = _cli("history", ro, check_rc=0)
        assert "cat" in history.stdout
        found = _cli("search", ro, "--like", "1", "--k", "3", check_rc=0)
        assert "1.png" in found.stdout or "2.png" in found.stdout
        out = tmp_path / "export"
        _cli("export", ro, "--format", "jsonl", "--out", out, check_rc=0)
        assert (out / "manifest.json").exists()
        line = _one_error_line(_cli("label", ro, "--items", "3", "--label", "cat"), "read-only")
        assert "writable" in line
        _one_error_line(_cli("scan", ro), "read-only")
        assert _digest(ro / "catalog.db") == before


def test_read_only_catalog_in_process(tmp_path, labelled):
    from curator.errors import ReadOnlyCatalogError

    root, _ = labelled
    with _read_only(tmp_path, root) as ro, Project.open(ro) as project:
        assert project.catalog.readonly
        assert project.status().total == 6
        assert len(project.history()) == 2
        with pytest.raises(ReadOnlyCatalogError, match="read-only"):
            project.label_items([3], "cat")


# --- corruption --------------------------------------------------------------------------------


def _schema_text_offset(data: bytes) -> int:
    return data.index(b"CREATE TABLE items")


def _corruptions(path: Path) -> dict[str, bytes]:
    data = path.read_bytes()
    header = bytearray(data)
    header[3] ^= 0xFF  # "SQLite format 3" no longer
    page_size = bytearray(data)
    page_size[16:18] = b"\x01\x23"  # not a power of two
    schema = bytearray(data)
    at = _schema_text_offset(data)
    schema[at + 7] = 0xFF  # "CREATE \xff..." : not UTF-8, and not SQL
    btree = bytearray(data)
    page = int.from_bytes(data[16:18], "big")
    btree[page * 2 : page * 2 + 16] = b"\xff" * 16  # a b-tree page header
    return {
        "truncated-50": data[:50],
        "truncated-half": data[: len(data) // 2],
        "header": bytes(header),
        "page-size": bytes(page_size),
        "schema-byte": bytes(schema),
        "btree-page": bytes(btree),
    }


@pytest.fixture
def corrupt_projects(tmp_path, labelled):
    root, _ = labelled
    with sqlite3.connect(root / "catalog.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    out = {}
    for name, payload in _corruptions(root / "catalog.db").items():
        copy = tmp_path / f"corrupt-{name}"
        shutil.copytree(root, copy)
        for extra in ("catalog.db-wal", "catalog.db-shm", "catalog.db-checked.json"):
            (copy / extra).unlink(missing_ok=True)
        (copy / "catalog.db").write_bytes(payload)
        out[name] = copy
    return out


def test_corrupt_catalogs_give_one_line_and_nothing_is_written(corrupt_projects):
    for name, project in corrupt_projects.items():
        before = _digest(project / "catalog.db")
        for args in (("status", project), ("label", project, "--items", "3", "--label", "cat"),
                     ("history", project)):
            proc = _cli(*args)
            if proc.returncode == 0:
                # A read may succeed when the damage is elsewhere; a write never may.
                assert args[0] != "label", (name, proc.stdout)
                continue
            line = _one_error_line(proc)
            assert "damaged" in line or "not a Curator" in line, (name, line)
            assert "curator repair" in line or "curator check" in line, (name, line)
        assert _digest(project / "catalog.db") == before, name


def test_unicode_damage_in_the_schema_is_a_damaged_catalog(corrupt_projects):
    from curator.errors import CatalogDamagedError

    with pytest.raises(CatalogDamagedError, match="damaged"):
        Project.open(corrupt_projects["schema-byte"]).close()


def _integrity_ok(path: Path) -> bool:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()
    except (sqlite3.Error, UnicodeDecodeError):
        return False


def test_random_byte_flips_never_give_a_traceback_or_a_write_into_damage(tmp_path, labelled,
                                                                       capsys):
    """24 catalogs with random bytes flipped (fixed seed): `label` either works on a catalog that
    passes integrity_check, or refuses with one line and leaves the file as it was."""
    import numpy as np

    from curator.cli import main

    root, _ = labelled
    with sqlite3.connect(root / "catalog.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pristine = (root / "catalog.db").read_bytes()
    rng = np.random.default_rng(1128)
    refused = 0
    for n in range(24):
        copy = tmp_path / f"flip{n}"
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns("catalog.db*"))
        data = bytearray(pristine)
        for at in rng.integers(0, len(data), size=int(rng.integers(1, 9))):
            data[int(at)] ^= int(rng.integers(1, 256))
        (copy / "catalog.db").write_bytes(bytes(data))
        healthy = _integrity_ok(copy / "catalog.db")
        before = _digest(copy / "catalog.db")
        try:
            main(["label", str(copy), "--items", "3", "--label", "cat"])
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        err = capsys.readouterr().err
        assert "Traceback" not in err
        if code == 0:
            assert healthy, f"flip{n}: label wrote into a catalog that fails integrity_check"
        else:
            refused += 1
            assert err.count("error:") == 1, err
            assert _digest(copy / "catalog.db") == before, f"flip{n} was written"
    assert refused >= 1


def test_read_only_forced_open(labelled, monkeypatch, capsys):
    """The read-only open on any machine: the catalog is declared unwritable, as a read-only
    mount would make it, and SQLite itself refuses writes."""
    import curator.connection as connection_module
    from curator.cli import main
    from curator.errors import ReadOnlyCatalogError

    root, _ = labelled
    monkeypatch.setattr(connection_module, "writable", lambda path: False)
    before = _digest(root / "catalog.db")
    with Project.open(root) as project:
        assert project.catalog.readonly
        assert project.status().total == 6
        with pytest.raises(ReadOnlyCatalogError):
            project.label_items([3], "cat")
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            project.catalog.db.conn.execute("DELETE FROM items")
    with pytest.raises(SystemExit) as info:
        main(["label", str(root), "--items", "3", "--label", "cat"])
    err = capsys.readouterr().err
    assert info.value.code == 1 and err.count("error:") == 1 and "read-only" in err
    assert _digest(root / "catalog.db") == before
