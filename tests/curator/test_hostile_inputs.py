"""Smaller hostile inputs: settings out of range, odd CSV files, --items forms, tricky names."""

from __future__ import annotations

import logging

import pytest

from curator.cli import main
from curator.errors import UsageError
from curator.project import Project
from curator.scan import ScanOptions
from curator.settings import load_settings
from indexing.workers import capped_workers, default_workers, max_workers


def _run(capsys, *args) -> tuple[int, str, str]:
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def project(tmp_path, media):
    src = tmp_path / "media"
    for i in range(5):
        media.image(src / f"{i}.png", seed=i)
    root = tmp_path / "proj"
    with Project.create(root, [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.add_label("cat")
        proj.add_label("dog")
    return root


def _labels(root) -> dict[int, str]:
    with Project.open(root) as proj:
        names = {lab.id: lab.name for lab in proj.labels()}
        return {i: names[lab] for i, lab in proj.catalog.db.execute(
            "SELECT item_id, label_id FROM item_labels")}


# --- settings ----------------------------------------------------------------------------------


def test_settings_from_the_environment_are_validated_like_the_flags(monkeypatch, caplog):
    monkeypatch.setenv("CURATOR_WORKERS", "-3")
    monkeypatch.setenv("CURATOR_BATCH_SIZE", "0")
    with caplog.at_level(logging.WARNING):
        settings = load_settings()
    assert settings.workers is None and settings.batch_size == 64
    assert "workers = -3 ignored" in caplog.text and "batch_size = 0 ignored" in caplog.text


def test_settings_from_the_config_file_are_validated(tmp_path, monkeypatch, caplog):
    config = tmp_path / "config.toml"
    config.write_text("workers = -1\nbatch_size = 8\n")
    monkeypatch.setenv("CURATOR_CONFIG", str(config))
    with caplog.at_level(logging.WARNING):
        settings = load_settings()
    assert settings.workers is None and settings.batch_size == 8


def test_too_many_workers_are_capped_with_a_warning(caplog):
    assert max_workers() >= default_workers()
    with caplog.at_level(logging.WARNING):
        assert capped_workers(10_000) == max_workers()
    assert "10000 workers asked for" in caplog.text
    assert capped_workers(1) == 1


# --- --from-file -------------------------------------------------------------------------------


def test_a_csv_with_a_byte_order_mark_is_read(project, tmp_path, capsys):
    csv = tmp_path / "labels.csv"
    csv.write_bytes("\ufeffitem,label\n1,cat\n2,dog\n1,cat\n".encode())
    code, out, err = _run(capsys, "label", project, "--from-file", csv)
    assert code == 0, err
    assert _labels(project) == {1: "cat", 2: "dog"}


def test_a_binary_file_is_one_clear_error(project, tmp_path, capsys):
    blob = tmp_path / "blob.csv"
    blob.write_bytes(bytes(range(256)) * 4)
    code, _, err = _run(capsys, "label", project, "--from-file", blob, "--label", "cat")
    assert code == 1 and "Traceback" not in err
    assert err.count("error:") == 1 and "not a UTF-8 text file" in err
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"1\n\x002\n")
    code, _, err = _run(capsys, "label", project, "--from-file", nul, "--label", "cat")
    assert code == 1 and "binary file" in err
    assert _labels(project) == {}


def test_duplicate_rows_with_different_labels_are_refused_naming_the_lines(project, tmp_path,
                                                                           capsys):
    csv = tmp_path / "labels.csv"
    csv.write_text("item,label\n1,cat\n2,dog\n\n1,dog\n")
    code, _, err = _run(capsys, "label", project, "--from-file", csv)
    assert code == 1
    assert "lines 2 and 5" in err and "item 1" in err and "'cat'" in err and "'dog'" in err
    assert _labels(project) == {}


# --- --items ID ... ----------------------------------------------------------------------------


def test_items_take_several_values_as_the_readme_shows(project, capsys):
    code, _, err = _run(capsys, "label", project, "--items", "1", "2", "3", "--label", "cat")
    assert code == 0, err
    assert _labels(project) == {1: "cat", 2: "cat", 3: "cat"}
    code, _, err = _run(capsys, "label", project, "--items", "4", "--items", "5", "--label", "dog")
    assert code == 0, err
    assert _labels(project)[4] == "dog" and _labels(project)[5] == "dog"


def test_spreading_stops_at_the_next_option(project, capsys):
    code, _, err = _run(capsys, "label", project, "--label", "cat", "--items", "2", "4")
    assert code == 0, err
    assert _labels(project) == {2: "cat", 4: "cat"}


# --- label names and imports -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cat\u202egod", "c\u200bat", "\u2066dog\u2069", "ca\ufefft"])
def test_label_names_refuse_bidi_and_zero_width_characters(project, name):
    with Project.open(project) as proj, pytest.raises(UsageError, match="invisible"):
        proj.add_label(name)


def test_labels_import_is_all_or_nothing(project):
    with Project.open(project) as proj:
        before = [lab.name for lab in proj.labels()]
        entries = [{"name": "bird"}, {"name": "fish", "colour": "#00ff00"},
                   {"name": "bad\u200bname"}]
        with pytest.raises(UsageError, match="entry 3"):
            proj.import_taxonomy(entries)
        assert [lab.name for lab in proj.labels()] == before
        with pytest.raises(UsageError, match="parent"):
            proj.import_taxonomy([{"name": "owl"}, {"name": "kitten", "parent": "nope"}])
        assert [lab.name for lab in proj.labels()] == before
        proj.import_taxonomy(entries[:2])
        assert {"bird", "fish"} <= {lab.name for lab in proj.labels()}
