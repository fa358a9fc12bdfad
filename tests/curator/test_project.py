"""The Project facade and the indexing pipeline: typed answers, no SQL, one pipeline for all."""

from __future__ import annotations

import ast
import inspect
import json
import os
from pathlib import Path

import pytest

from curator import project as project_module
from curator import project_review
from curator.audit import AuditReport, Verdict
from curator.cli import main
from curator.embed import SpaceRow
from curator.errors import CuratorError, UsageError
from curator.groups import Group, GroupDetail, ItemFacets, Queue
from curator.items import ItemRow, ProjectStatus
from curator.pipeline import IndexOptions, IndexReport, index
from curator.project import Project
from curator.report import CoverageReport
from indexing.progress import Cancelled, CancelToken

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (20, 40, 220)}


@pytest.fixture
def sources(tmp_path, media) -> Path:
    src = tmp_path / "media"
    for name, colour in COLOURS.items():
        for i in range(8):
            media.image(src / name / f"{i:02d}.png", size=(40 + i, 40), color=colour, seed=i)
    media.wav(src / "sounds" / "a.wav", freq=440.0)
    media.wav(src / "sounds" / "b.wav", freq=660.0)
    return src


@pytest.fixture
def indexed(tmp_path, sources):
    with Project.create(tmp_path / "proj", [sources]) as proj:
        proj.set_annotator("ana")
        index(proj, IndexOptions("classic", "classic", n_groups=3, workers=0, build_map=False))
        yield proj


# --- the facade's shape -----------------------------------------------------------------------


@pytest.mark.parametrize("module", [project_module, project_review])
def test_the_facade_holds_no_sql(module):
    source = inspect.getsource(module)
    tree = ast.parse(source)
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)]
    sql = [s for s in strings if any(word in s.upper().split() for word in
                                     ("SELECT", "INSERT", "UPDATE", "DELETE"))]
    assert sql == []
    calls = [n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute)]
    assert "execute" not in calls and "query" not in calls


def test_every_public_method_says_what_it_returns():
    for name, member in inspect.getmembers(Project, inspect.isfunction):
        if name.startswith("_"):
            continue
        annotation = inspect.signature(member).return_annotation
        assert annotation is not inspect.Signature.empty, name
        assert annotation not in ("Any", "dict"), name
        assert "Any" not in annotation, (name, annotation)


def test_typed_rows_hold_exactly_their_declared_keys(indexed):
    first = indexed.items()[0]
    assert set(first) == set(ItemRow.__annotations__)
    assert indexed.item(first["id"]) == first
    space = indexed.spaces()[0]
    assert set(space) == set(SpaceRow.__annotations__) and space["count"] > 0
    assert set(indexed.report()) == set(CoverageReport.__annotations__)


def test_no_feature_calls_back_into_the_facade():
    root = Path(project_module.__file__).parent
    for name in ("quality.py", "audit.py", "report.py", "items.py", "groups.py", "scan.py",
                 "embed.py", "labels.py", "models.py"):
        text = (root / name).read_text(encoding="utf-8")
        assert "curator.project" not in text, name


def _curator_imports() -> dict[str, set[str]]:
    """Each module of `curator` (a sub-package counts as one) -> the others it imports, at
    module level or inside a function (a lazy import is still a dependency)."""
    root = Path(project_module.__file__).parent

    def unit(dotted: str) -> str:
        return ".".join(dotted.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        me = unit(".".join(("curator", *path.relative_to(root).with_suffix("").parts)))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                     and node.level == 0 else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.startswith("curator.") and unit(name) != me:
                    graph.setdefault(me, set()).add(unit(name))
    return graph


def test_curator_modules_import_one_way():
    graph = _curator_imports()
    assert graph["curator.project"] >= {"curator.labels", "curator.groups"}  # the walk sees them

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    cycles = sorted(f"{a} -> {b} -> ... -> {a}" for a, targets in graph.items()
                    for b in targets if reaches(b, a))
    assert cycles == []


# --- sources and items ------------------------------------------------------------------------


def test_create_refuses_a_folder_that_is_not_a_project(tmp_path, sources):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        Project.create(tmp_path / "busy", [sources])
    with pytest.raises(UsageError, match="does not exist"):
        Project.create(tmp_path / "p", [tmp_path / "nowhere"])


def test_sources_are_added_once_and_never_nested(tmp_path, sources):
    with Project.create(tmp_path / "proj", [sources]) as proj:
        assert proj.add_sources([str(sources)]) == []
        with pytest.raises(UsageError, match="overlaps"):
            proj.add_sources([str(sources / "red")])
        assert [s.root for s in proj.sources()] == [str(sources)]


def test_status_items_and_references(indexed, sources):
    status = indexed.status()
    assert isinstance(status, ProjectStatus)
    assert status.counts["image"]["ok"] == 24 and status.counts["audio"]["ok"] == 2
    assert status.last_scan is not None and status.last_scan.status == "ok"
    red = [i for i in indexed.items(modality="image") if i["path"].startswith("red/")]
    assert len(red) == 8 and all(os.path.isfile(i["abs_path"]) for i in red)
    first = red[0]
    assert indexed.item(first["id"])["abs_path"] == str(sources / first["path"])
    ids = indexed.resolve_items([str(first["id"]), first["path"], first["abs_path"]])
    assert ids == [first["id"]] * 3
    with pytest.raises(UsageError, match="no item with path"):
        indexed.resolve_items(["red/none.png"])
    with pytest.raises(UsageError, match="no item with id"):
        indexed.item(10**9)


# --- groups, labels, audits -------------------------------------------------------------------


def test_queue_and_group_are_dataclasses_with_real_counts(indexed):
    queue = indexed.queue(order="size")
    assert isinstance(queue, Queue) and queue.groups_decided == 0
    assert all(isinstance(g, Group) for g in queue.groups)
    target = queue.groups[0]
    detail = indexed.group(target.group_id)
    assert isinstance(detail, GroupDetail) and detail.size == target.size == len(detail.items)
    assert detail.items[:len(detail.representatives)] == detail.representatives
    indexed.add_label("thing")
    indexed.label_items(detail.items[:2], "thing")
    again = {g.group_id: g for g in indexed.groups()}[target.group_id]
    assert again.labelled == 2  # members with a current label: counted, not a constant
    facets = indexed.item_facets(detail.items)
    assert isinstance(facets, ItemFacets)
    assert facets.state.tolist()[:2] == [1, 1] and (facets.group == target.group_id).all()
    assert json.loads(json.dumps(queue.to_json()))["groups_total"] == queue.groups_total


def test_audit_answers_are_typed_and_corrections_are_undoable(indexed):
    indexed.add_label("colour")
    indexed.add_label("other")
    items = [i["id"] for i in indexed.items(modality="image")]
    indexed.label_items(items[:6], "colour")
    audit = indexed.start_audit(n=4, seed=1)
    todo = indexed.next_unreviewed(audit, 10)
    verdict = indexed.record_verdict(audit, todo[0].item_id, "wrong", "other")
    assert isinstance(verdict, Verdict) and verdict.event is not None
    assert indexed.history(limit=1)[0].note == f"audit {audit}"
    report = indexed.audit_report(audit)
    assert isinstance(report, AuditReport) and report.reviewed == 1
    assert report.overall["wrong"] == 1
    indexed.undo()
    assert indexed.history(limit=1)[0].action == "undo"


def test_domain_errors_carry_the_cli_hint_apart(tmp_path, sources, capsys):
    with Project.create(tmp_path / "proj", [sources]) as proj, \
            pytest.raises(UsageError) as info:
        proj.queue()
    assert "`curator" not in str(info.value)  # the app shows this line as it is
    assert "curator cluster" in info.value.hint
    with pytest.raises(SystemExit):
        main(["queue", str(tmp_path / "proj")])
    err = capsys.readouterr().err
    assert "has no groups yet" in err and "curator cluster" in err


def test_domain_errors_name_options_and_the_cli_names_their_flags(tmp_path, sources, capsys):
    from curator.cli.base import error_line

    with Project.create(tmp_path / "proj", [sources]) as proj, \
            pytest.raises(UsageError) as info:
        proj.split(1, k=9)
    assert info.value.option == "k" and "--" not in str(info.value)
    assert error_line(info.value).endswith("(--k)")
    labelled = UsageError("no label given for the items", option="label", hint="name a label")
    assert error_line(labelled) == ("no label given for the items; name a label "
                                    "(--label NAME, --noise or --mixed)")
    root = Path(project_module.__file__).parent
    for path in root.rglob("*.py"):
        if "cli" in path.parts or path.name in SPEAKS_OF_FLAGS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "").endswith("Error"):
                words = " ".join(ast.unparse(a) for a in [*node.args, *node.keywords])
                assert not any(f"{c}--" in words for c in " ('`\""), (path.name, words)


# `curator doctor` and its model check are advice for the command line: they name the flags of
# `curator embed` on purpose.
SPEAKS_OF_FLAGS = {"doctor.py", "model_check.py"}


# --- the pipeline -----------------------------------------------------------------------------


def test_index_runs_every_stage_with_weighted_progress(tmp_path, sources):
    events = []
    with Project.create(tmp_path / "proj", [sources]) as proj:
        report = index(proj, IndexOptions("classic", "classic", n_groups=3, workers=0),
                       progress=events.append)
        runs = {r.kind: r.status for r in proj.runs()}
        ids, coords = proj.map()
    assert isinstance(report, IndexReport) and report.unavailable == []
    assert runs == {"scan": "ok", "embed": "ok", "cluster": "ok", "map": "ok"}
    assert report.scan.new == 26 and report.embed.embedded == 26
    assert sum(c["groups"] for c in report.cluster.values()) >= 3
    assert len(ids) == 26 and coords.shape == (26, 2)
    stages = [e.stage.split(":")[0] for e in events]
    assert stages[0] == "1/4 scan" and stages[-1] == "4/4 map"
    assert {"2/4 embed", "3/4 group"} <= set(stages)
    overall = [e.overall for e in events]
    assert all(o is not None for o in overall)
    assert overall == sorted(overall) and overall[-1] == pytest.approx(1.0)


def test_index_stops_by_raising_cancelled_and_resumes(tmp_path, sources):
    token = CancelToken()

    def progress(event):
        if event.stage.startswith("2/4 embed") and event.done > 0:
            token.cancel()

    options = IndexOptions("classic", "classic", n_groups=3, workers=0, batch_size=4)
    with Project.create(tmp_path / "proj", [sources]) as proj:
        with pytest.raises(Cancelled):
            index(proj, options, progress=progress, cancel=token)
        runs = {r.kind: r.status for r in proj.runs()}
        assert runs == {"scan": "ok", "embed": "cancelled"}
        kept = proj.spaces()[0]["count"]
        assert 0 < kept < 26
        report = index(proj, options)
        assert report.embed.embedded == 26 - kept  # finished batches are not embedded twice


def test_options_come_from_the_same_settings_as_the_cli(tmp_path, monkeypatch):
    config = Path(os.environ["CURATOR_CONFIG"])
    config.write_text('model = "classic"\nbatch_size = 8\ndevice = "cpu"\n', encoding="utf-8")
    monkeypatch.setenv("CURATOR_AUDIO_MODEL", "classic")
    monkeypatch.setenv("CURATOR_WORKERS", "0")
    options = IndexOptions.from_settings(n_groups=5, batch_size=None)
    assert (options.model, options.audio_model) == ("classic", "classic")
    assert (options.batch_size, options.device, options.workers) == (8, "cpu", 0)
    assert options.n_groups == 5
    assert IndexOptions.from_settings(device="cuda").device == "cuda"  # a flag wins


def test_default_models_are_named_once():
    from curator.settings import Settings
    from indexing.embedders import DEFAULT_MODELS

    assert IndexOptions().model == Settings().model == DEFAULT_MODELS["image"]
    assert IndexOptions().audio_model == Settings().audio_model == DEFAULT_MODELS["audio"]


def test_index_command(tmp_path, sources, capsys):
    with Project.create(tmp_path / "proj", [sources]):
        pass
    with pytest.raises(SystemExit) as info:
        main(["index", str(tmp_path / "proj"), "--model", "classic", "--audio-model", "classic",
              "--workers", "0", "--groups", "3", "--no-map", "--json"])
        raise SystemExit(0)
    assert (info.value.code or 0) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scan"]["new"] == 26 and report["embed"]["embedded"] == 26
    assert report["map"] is None and report["cluster"]["run_id"] > 0


def test_no_model_at_all_is_one_clear_error(tmp_path, sources, monkeypatch):
    monkeypatch.setenv("CURATOR_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with Project.create(tmp_path / "proj", [sources]) as proj:
        with pytest.raises(CuratorError, match="no model could be loaded") as info:
            index(proj, IndexOptions.from_settings(model="ViT-B-32/none",
                                                   audio_model="nobody/no-clap", workers=0))
        assert proj.runs("embed")[0].status == "failed"
    from curator.cli.base import error_line

    assert "--" not in info.value.hint and error_line(info.value).endswith("(--model classic)")
