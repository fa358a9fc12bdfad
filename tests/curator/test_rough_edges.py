"""Rough edges of the command line (issue 11, finding 10): each says what is missing in one line."""

from __future__ import annotations

import pytest

from curator.cli import main
from curator.project import Project


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
        raise SystemExit(0)
    out = capsys.readouterr()
    return info.value.code or 0, out.out, out.err


@pytest.fixture
def empty_project(tmp_path, media):
    src = tmp_path / "media"
    media.image(src / "a.png")
    root = tmp_path / "proj"
    Project.create(root, [src]).close()
    return root


def test_audit_report_without_id_says_id_is_needed(capsys, empty_project):
    code, out, err = run(capsys, "audit", empty_project, "--report")
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1
    assert "--report needs --id" in lines[0] and "--sample N" in lines[0]


def test_audit_verdict_without_id_says_id_is_needed(capsys, empty_project):
    code, out, err = run(capsys, "audit", empty_project, "--item", 1, "--verdict", "correct")
    assert code != 0 and "--verdict needs --id" in err


def test_labels_list_on_an_empty_taxonomy_says_how_to_add_one(capsys, empty_project):
    code, out, err = run(capsys, "labels", "list", empty_project)
    assert code == 0 and "no labels yet" in out and "curator labels add" in out


def test_label_a_group_without_an_action_names_the_flags(capsys, empty_project):
    code, out, err = run(capsys, "label", empty_project, "--group", 17)
    assert code != 0 and "--label NAME" in err and "None" not in err
