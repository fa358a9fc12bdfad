"""The coverage report: the counts are right, the HTML is one well-formed self-contained file."""

from __future__ import annotations

import json
import os
from html.parser import HTMLParser
from typing import Any, Optional

import pytest
from click.testing import CliRunner

from curator.errors import UsageError
from curator.project import Project
from curator.report import build_report, render_text, write_html
from curator.scan import ScanOptions

VOID = {"meta", "br", "img", "hr", "input", "link"}
SVG_VOID = {"rect"}  # written self-closed or closed; both are fine


class _Checker(HTMLParser):
    """Tag balance, and every external reference, of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.external: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") or (value and "url(" in value):
                self.external.append(f"{name}={value}")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href"):
                self.external.append(f"{name}={value}")

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(text: str) -> _Checker:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert text.startswith("<!DOCTYPE html>")
    assert checker.errors == [] and checker.stack == [], (checker.errors, checker.stack)
    assert checker.external == []
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text
    return checker


@pytest.fixture
def project(tmp_path, media):
    src = tmp_path / "media"
    for i in range(6):
        media.image(src / "cats" / f"{i}.png", size=(16, 16), color=(200, 30, 30), seed=i)
    for i in range(4):
        media.image(src / "dogs" / "inner" / f"{i}.png", size=(16, 16), color=(30, 30, 200),
                    seed=10 + i)
    media.image(src / "top.png", size=(16, 16), seed=99)
    media.wav(src / "sounds" / "a.wav", seconds=0.25)
    media.wav(src / "sounds" / "b.wav", seconds=0.25, freq=660)
    with Project.create(tmp_path / "proj", [src]) as proj:
        proj.scan(ScanOptions(workers=0))
        proj.set_annotator("ana")
        yield proj


def _ids(project: Project, prefix: str) -> list[int]:
    return [i["id"] for i in project.items() if i["path"].startswith(prefix)]


def test_counts_by_label_folder_modality_and_source(project):
    project.add_label("animal")
    project.add_label("<script>cat</script>", parent="animal")
    project.add_label("dog", parent="animal")
    project.add_label("unused")
    cats, dogs, sounds = _ids(project, "cats/"), _ids(project, "dogs/"), _ids(project, "sounds/")
    project.label_items(cats[:5], "<script>cat</script>")
    project.label_items(dogs[:3], "dog", source="imported")
    project.label_items(cats[5:], action="noise")
    project.label_items(sounds[:1], action="mixed")
    report = build_report(project.catalog)
    json.dumps(report)  # JSON-ready
    assert report["totals"] == {"labelled": 8, "noise": 1, "mixed": 1, "unlabelled": 3,
                                "total": 13}
    by_label = {r["label"]: r["items"] for r in report["by_label"]}
    assert by_label == {"animal": 0, "animal/<script>cat</script>": 5, "animal/dog": 3,
                        "unused": 0}
    folders = {r["folder"]: r for r in report["by_source_folder"]}
    assert set(folders) == {"cats", "dogs", "sounds", "."}
    assert (folders["cats"]["labelled"], folders["cats"]["noise"], folders["cats"]["total"]) == \
        (5, 1, 6)
    assert (folders["dogs"]["labelled"], folders["dogs"]["unlabelled"]) == (3, 1)
    assert folders["."]["unlabelled"] == 1 and folders["."]["name"] == "(top level)"
    modality = {r["name"]: r for r in report["by_modality"]}
    assert (modality["image"]["labelled"], modality["image"]["total"]) == (8, 11)
    assert (modality["audio"]["mixed"], modality["audio"]["unlabelled"]) == (1, 1)
    assert report["by_label_source"] == {"imported": 3, "manual": 7}
    assert report["groups"] is None and report["duplicates"] is None


def test_groups_decided_and_top_undecided(project):
    project.embed("classic", "classic", workers=0)
    run_id, _ = project.cluster(n_groups=3)
    project.add_label("red")
    groups = project.groups(run_id, order="size")
    project.label_group(groups[0].group_id, "red")
    report = build_report(project.catalog)
    g = report["groups"]
    n = len(groups)
    assert n >= 3
    assert g["run_id"] == run_id and g["total"] == n and g["decided"] == 1
    assert g["by_status"] == {"labelled": 1, "undecided": n - 1}
    assert [r["group_id"] for r in g["top_undecided"]] == [x.group_id for x in groups[1:]]
    assert g["unlabelled_items_in_undecided_groups"] == sum(x.size for x in groups[1:])
    text = render_text(report)
    assert f"groups of run {run_id}: 1 of {n} decided" in text


def test_html_is_self_contained_well_formed_and_escaped(project, tmp_path):
    project.add_label("<script>alert(1)</script> & \"quotes\"")
    project.label_items(_ids(project, "cats/"), "<script>alert(1)</script> & \"quotes\"")
    report = build_report(project.catalog)
    path = write_html(report, tmp_path / "out" / "report.html")
    assert sorted(os.listdir(tmp_path / "out")) == ["report.html"]  # no temp file left
    text = path.read_text(encoding="utf-8")
    checker = check_html(text)
    assert "script" not in checker.tags  # the label is text, never markup
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert checker.tags.count("svg") >= 3 and "rect" in checker.tags
    body = " ".join(checker.text)
    assert "Coverage report" in body and "13" in body
    for state in ("labelled", "noise", "mixed", "unlabelled"):
        assert state in body
    assert ">6<" in text  # the label's count in its table row


def test_write_html_is_atomic_and_refuses_a_folder(project, tmp_path, monkeypatch):
    report = build_report(project.catalog)
    target = tmp_path / "r.html"
    target.write_text("old report")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("curator.report.os.fsync", broken)
    with pytest.raises(OSError):
        write_html(report, target)
    assert target.read_text() == "old report"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith("html") or ".tmp" in
                  p.name) == ["r.html"]
    with pytest.raises(UsageError, match="folder"):
        write_html(report, tmp_path)


def test_text_rendering_has_the_numbers(project):
    project.add_label("cat")
    project.label_items(_ids(project, "cats/"), "cat")
    text = render_text(build_report(project.catalog))
    assert "13 items: 6 labelled" in text
    assert "cat" in text and "#" in text
    assert "groups: no clustering yet" in text


# --- the facade method and CLI command ---------------------------------------------------------


def test_cli_report_command(project, tmp_path):
    project.add_label("cat")
    project.label_items(_ids(project, "cats/"), "cat")
    from curator.cli import cli as command

    runner = CliRunner()
    result = runner.invoke(
        command, ["report", str(project.root), "--html", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 0, result.output
    assert "6 labelled" in result.output and f"wrote {tmp_path / 'r.html'}" in result.output
    check_html((tmp_path / "r.html").read_text(encoding="utf-8"))
    result = runner.invoke(command, ["report", str(project.root), "--json"])
    assert json.loads(result.output)["totals"]["labelled"] == 6
