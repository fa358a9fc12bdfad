"""Label quality: suspects from neighbours, stratified audits with Wilson intervals, propagation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

import curator.audit as audit_mod
from curator import quality
from curator.errors import UsageError
from curator.project import Project
from curator.scan import ScanOptions
from indexing.progress import Cancelled

COLOURS = {"red": (200, 30, 30), "blue": (30, 30, 200), "green": (30, 180, 40)}
PER_CLASS = 15
PURPLE = (115, 30, 115)


@pytest.fixture
def commands():
    from curator.cli import cli

    return cli


def _build(tmp_path, media, extra: int = 0) -> tuple[Project, dict]:
    src = tmp_path / "media"
    for name, colour in COLOURS.items():
        for i in range(PER_CLASS):
            media.image(src / f"{name}{i:02d}.png", size=(24, 24), color=colour, seed=i)
    for i in range(extra):  # purple: as far from red as from blue
        media.image(src / f"purple{i:02d}.png", size=(24, 24), color=PURPLE, seed=100 + i)
    proj = Project.create(tmp_path / "proj", [src])
    proj.scan(ScanOptions(workers=0))
    proj.embed("classic", "classic", workers=0)
    proj.set_annotator("ana")
    for name in COLOURS:
        proj.add_label(name)
    by_name: dict[str, list[int]] = {}
    for row in proj.items():
        by_name.setdefault(row["path"][:-6], []).append(row["id"])
    return proj, {k: sorted(v) for k, v in by_name.items()}


@pytest.fixture
def colours(tmp_path, media):
    proj, ids = _build(tmp_path, media)
    yield proj, ids
    proj.close()


def _current(proj, item_id):
    row = proj.catalog.db.execute(
        "SELECT il.state, l.name FROM item_labels il LEFT JOIN labels l ON l.id = il.label_id "
        "WHERE il.item_id = ?", [item_id]).fetchone()
    return tuple(row) if row else None


def _events(proj):
    return proj.catalog.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]


# --- suspects ---------------------------------------------------------------------------------


def test_suspects_rank_planted_mislabels_first(colours):
    proj, ids = colours
    red, blue, green = ids["red"], ids["blue"], ids["green"]
    planted = red[12:]
    proj.label_items(red[:12], "red")
    proj.label_items(planted, "blue")
    proj.label_items(blue[:10], "blue")
    proj.label_items(green[:8], "green")
    proj.label_items(green[8:10], action="noise")

    found = proj.suspects(k=10, min_disagreement=0.0)
    assert {s.item_id for s in found[:3]} == set(planted)
    assert all(s.label == "blue" and s.suggested == "red" for s in found[:3])
    assert found[2].score > found[3].score
    scores = [(s.score, s.similarity) for s in found]
    assert scores == sorted(scores, reverse=True)
    top = found[0]
    assert len(top.neighbours) == 10 and top.item_id not in top.neighbours
    labelled = set(red) | set(blue[:10]) | set(green[:8])
    assert set(top.neighbours) <= labelled  # neighbours are labelled items only
    assert top.path.endswith(".png") and Path(top.path).is_absolute()
    assert {s.item_id for s in found} <= labelled  # noise and unlabelled items are never suspects

    # The default threshold keeps exactly the planted ones; limit cuts the list.
    assert {s.item_id for s in proj.suspects()} == set(planted)
    assert len(proj.suspects(limit=2)) == 2
    assert json.loads(json.dumps(top.to_json()))["suggested"] == "red"


def test_suspects_reports_progress_and_checks_arguments(colours):
    proj, ids = colours
    proj.label_items(ids["red"], "red")
    events = []
    quality.suspects(proj.catalog, progress=events.append)
    assert events[-1].done == events[-1].total == PER_CLASS
    with pytest.raises(Cancelled):
        quality.suspects(proj.catalog, cancel=lambda: True)
    for bad in ({"k": 0}, {"min_disagreement": 1.5}, {"limit": 0}):
        with pytest.raises(UsageError):
            quality.suspects(proj.catalog, **bad)


# --- audits -----------------------------------------------------------------------------------


def test_allocation_is_proportional_with_a_minimum_of_two():
    sizes = {"a": 12, "b": 3, "c": 15, "d": 10, "e": 3, "f": 2}
    # Quotas 12*N/45: 3.2, 0.8, 4, 2.67, 0.8, 0.53 -> floors 3,0,4,2,0,0 (9); the 3 seats left go
    # to the largest remainders b, e (0.8, key order on a tie) and d (0.67); then b, e, f -> 2.
    assert audit_mod.allocate(sizes, 12) == {"a": 3, "b": 2, "c": 4, "d": 3, "e": 2, "f": 2}
    assert audit_mod.allocate({"a": 90, "b": 10}, 10) == {"a": 9, "b": 2}
    assert audit_mod.allocate({"a": 5, "b": 1}, 3) == {"a": 3, "b": 1}
    assert audit_mod.allocate({"a": 5, "b": 1}, 50) == {"a": 5, "b": 1}


def _audit_rows(proj, audit_id):
    return proj.catalog.db.execute(
        "SELECT item_id, stratum, label_id FROM audit_items WHERE audit_id = ? ORDER BY item_id",
        [audit_id]).fetchall()


def test_audit_sample_is_stratified_by_label_and_source_and_deterministic(colours):
    proj, ids = colours
    red, blue, green = ids["red"], ids["blue"], ids["green"]
    proj.label_items(red[:12], "red", source="group")
    proj.label_items(red[12:], "red")  # manual
    proj.label_items(blue, "blue", source="group")
    proj.label_items(green[:10], "green", source="group")
    proj.label_items(green[10:13], "green", source="propagated")
    proj.label_items(green[13:], "green", source="imported")
    # A manual relabel that is undone leaves the item with its group label, source group.
    proj.label_items([red[0]], "blue")
    proj.undo()
    assert _current(proj, red[0]) == ("labelled", "red")

    audit = proj.start_audit(n=12, seed=7)
    rows = _audit_rows(proj, audit)
    lab = {x.name: x.id for x in proj.labels()}
    per_stratum: dict[str, list[int]] = {}
    for item, stratum, label_id in rows:
        per_stratum.setdefault(stratum, []).append(item)
        assert _current(proj, item)[1] == {v: k for k, v in lab.items()}[label_id]
    expected = {(lab["red"], "group"): 3, (lab["red"], "manual"): 2, (lab["blue"], "group"): 4,
                (lab["green"], "group"): 3, (lab["green"], "propagated"): 2,
                (lab["green"], "imported"): 2}
    assert {(int(s.split("|")[0]), s.split("|")[1]): len(v)
            for s, v in per_stratum.items()} == expected
    members = {"red|group": red[:12], "red|manual": red[12:], "blue|group": blue,
               "green|group": green[:10], "green|propagated": green[10:13],
               "green|imported": green[13:]}
    for key, items in members.items():
        name, source = key.split("|")
        assert set(per_stratum[f"{lab[name]}|{source}"]) <= set(items)

    again = proj.start_audit(n=12, seed=7)
    assert [r[:2] for r in _audit_rows(proj, again)] == [r[:2] for r in rows]
    assert ([t.item_id for t in proj.next_unreviewed(again, 100)]
            == [t.item_id for t in proj.next_unreviewed(audit, 100)])
    other = proj.start_audit(n=12, seed=8)
    assert [r[0] for r in _audit_rows(proj, other)] != [r[0] for r in rows]


def test_verdicts_and_a_single_stratum_wilson_interval(colours):
    proj, ids = colours
    items = ids["red"][:12]
    proj.label_items(items, "red")
    audit = proj.start_audit(n=50)
    todo = proj.next_unreviewed(audit, limit=100)
    assert sorted(t.item_id for t in todo) == items and len(proj.next_unreviewed(audit)) == 10
    verdicts = ["correct"] * 8 + ["wrong"] * 2 + ["unsure"] * 2
    for t, v in zip(todo, verdicts):
        proj.record_verdict(audit, t.item_id, v)
    assert proj.next_unreviewed(audit) == []
    rep = proj.audit_report(audit)
    assert (rep.sampled, rep.reviewed, rep.remaining) == (12, 12, 0)
    overall = rep.overall
    assert (overall["correct"], overall["wrong"], overall["unsure"]) == (8, 2, 2)
    # Wilson, p = 8/10, n = 10, z = 1.96: centre (0.8 + 0.1921) / 1.3841 = 0.7167,
    # half 1.96 * sqrt(0.016 + 0.0096) / 1.3841 = 0.2266.
    assert overall["accuracy"] == pytest.approx(0.8)
    assert overall["low"] == pytest.approx(0.4902, abs=1e-4)
    assert overall["high"] == pytest.approx(0.9433, abs=1e-4)
    assert rep.labels["red"]["accuracy"] == pytest.approx(0.8)
    assert rep.sources["manual"]["low"] == pytest.approx(0.4902, abs=1e-4)
    # A later verdict replaces the earlier one.
    proj.record_verdict(audit, todo[8].item_id, "correct")
    assert proj.audit_report(audit).overall["accuracy"] == pytest.approx(9 / 10)


def test_report_weights_strata_by_population(colours):
    proj, ids = colours
    proj.label_items(ids["red"], "red", source="group")  # 15 items
    proj.label_items(ids["blue"][:2], "blue")  # 2 items, manual
    audit = proj.start_audit(n=5, seed=1)  # quotas 4.41 and 0.59 -> 4 and 1, raised to 2
    todo = proj.next_unreviewed(audit, 100)
    reds = [t for t in todo if t.label == "red"]
    blues = [t for t in todo if t.label == "blue"]
    assert len(reds) == 4 and len(blues) == 2 and {t.source for t in reds} == {"group"}
    for t in reds:
        proj.record_verdict(audit, t.item_id, "correct")
    proj.record_verdict(audit, blues[0].item_id, "correct")
    proj.record_verdict(audit, blues[1].item_id, "wrong")
    rep = proj.audit_report(audit)
    # Blue is over-sampled, so the plain share (5/6) would be biased low:
    # p = 15/17 * 4/4 + 2/17 * 1/2 = 16/17; n_eff = 1 / ((15/17)^2 / 4 + (2/17)^2 / 2) = 4.9614.
    overall = rep.overall
    p, n = 16 / 17, 1 / ((15 / 17) ** 2 / 4 + (2 / 17) ** 2 / 2)
    assert overall["accuracy"] == pytest.approx(0.941176, abs=1e-6)
    assert overall["effective_n"] == pytest.approx(4.9614, abs=1e-4)
    z = 1.959963984540054
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (overall["low"], overall["high"]) == pytest.approx((centre - half, centre + half))
    assert rep.labels["red"]["accuracy"] == 1.0
    assert rep.labels["blue"]["accuracy"] == 0.5
    assert rep.labels["blue"]["effective_n"] == pytest.approx(2.0)
    assert rep.sources == {"group": rep.labels["red"], "manual": rep.labels["blue"]}
    assert overall["coverage"] == 1.0 and rep.remaining == 0


def test_wrong_verdict_with_a_correction_relabels_undoably(colours):
    proj, ids = colours
    proj.label_items(ids["red"][:4], "red")
    audit = proj.start_audit(n=4)
    item = proj.next_unreviewed(audit)[0].item_id
    result = proj.record_verdict(audit, item, "wrong", "blue")
    assert _current(proj, item) == ("labelled", "blue")
    ev = proj.history(limit=1)[0]
    assert ev.id == result.event and ev.source == "manual" and ev.note == f"audit {audit}"
    row = proj.catalog.db.execute("SELECT verdict, corrected_label FROM audit_items WHERE "
                                  "audit_id = ? AND item_id = ?", [audit, item]).fetchone()
    assert row == ("wrong", next(x.id for x in proj.labels() if x.name == "blue"))
    proj.undo()
    assert _current(proj, item) == ("labelled", "red")

    with pytest.raises(UsageError, match="verdict"):
        proj.record_verdict(audit, item, "maybe")
    with pytest.raises(UsageError, match="wrong"):
        proj.record_verdict(audit, item, "correct", "blue")
    with pytest.raises(UsageError, match="not in the sample"):
        proj.record_verdict(audit, ids["green"][0], "correct")
    with pytest.raises(UsageError, match="no audit"):
        proj.audit_report(999)
    events = _events(proj)
    with pytest.raises(UsageError, match="no label"):
        proj.record_verdict(audit, item, "wrong", "purple")
    assert _events(proj) == events


def test_audit_needs_labelled_items(colours):
    proj, _ = colours
    with pytest.raises(UsageError, match="no labelled items"):
        proj.start_audit(n=5)
    with pytest.raises(UsageError):
        audit_mod.start_audit(proj.catalog, n=0)


# --- propagation ------------------------------------------------------------------------------


@pytest.fixture
def with_purple(tmp_path, media):
    """10 of 15 labelled per colour; 9 purple items, 3 labelled red and 3 blue: the other 3
    purple ones have neighbours that disagree, so they are ambiguous."""
    proj, ids = _build(tmp_path, media, extra=9)
    for name in COLOURS:
        proj.label_items(ids[name][:10], name)
    proj.label_items(ids["purple"][:3], "red")
    proj.label_items(ids["purple"][3:6], "blue")
    ids["ambiguous"] = ids["purple"][6:]
    yield proj, ids
    proj.close()


def test_propagate_labels_clear_items_as_one_undoable_event(with_purple):
    proj, ids = with_purple
    noise = ids["red"][14]
    proj.label_items([noise], action="noise")
    before = _events(proj)
    report = proj.propagate(min_confidence=0.8, k=10)
    expected = {i: name for name in COLOURS for i in ids[name][10:] if i != noise}
    assert {p.item_id: p.label for p in report.proposals} == expected
    assert report.counts == {"blue": 5, "green": 5, "red": 4}
    assert all(_current(proj, i) == ("labelled", name) for i, name in expected.items())
    assert all(_current(proj, i) is None for i in ids["ambiguous"])  # left alone
    assert _current(proj, noise) == ("noise", None)
    assert report.below_confidence == 3 and report.considered == 17 and report.applied
    assert _events(proj) == before + 1
    ev = proj.history(limit=1)[0]
    assert ev.id == report.event_id and ev.source == "propagated" and ev.item_count == 14
    assert proj.undo().restored == 14
    assert all(_current(proj, i) is None for i in expected)
    assert all(_current(proj, i) == ("labelled", n) for n in COLOURS for i in ids[n][:10])


def test_propagate_dry_run_and_confidence_threshold(with_purple):
    proj, ids = with_purple
    state = proj.catalog.db.execute("SELECT * FROM item_labels ORDER BY item_id").fetchall()
    before = _events(proj)
    dry = proj.propagate(min_confidence=0.0, apply=False)
    assert dry.event_id is None and not dry.applied
    assert proj.catalog.db.execute("SELECT * FROM item_labels ORDER BY item_id").fetchall() == state
    assert _events(proj) == before
    purple = {p.item_id: p for p in dry.proposals if p.item_id in ids["ambiguous"]}
    assert len(purple) == 3 and all(0.3 < p.confidence < 0.8 for p in purple.values())
    assert all(p.label in ("red", "blue") and p.voters >= 2 for p in purple.values())
    cut = max(p.confidence for p in purple.values())
    strict = proj.propagate(min_confidence=cut, apply=False)
    assert sum(p.item_id in purple for p in strict.proposals) == 1
    with pytest.raises(Cancelled):
        proj.propagate(cancel=lambda: True)
    assert _events(proj) == before
    for bad in ({"k": 1}, {"min_confidence": 1.5}):
        with pytest.raises(UsageError):
            proj.propagate(**bad)


def test_propagate_needs_two_labelled_neighbours(colours):
    proj, ids = colours
    proj.label_items(ids["red"][:1], "red")
    report = proj.propagate(min_confidence=0.0)
    assert report.proposals == () and report.event_id is None
    assert report.considered == 3 * PER_CLASS - 1


# --- command line -----------------------------------------------------------------------------


def test_cli_commands(with_purple, commands):
    proj, ids = with_purple
    root = str(proj.root)
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(commands, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    proj.label_items(ids["red"][8:10], "blue")  # plant two suspects
    found = json.loads(invoke("suspects", root, "--json"))
    assert {s["item_id"] for s in found} >= set(ids["red"][8:10])
    assert "suggested" in invoke("suspects", root, "--limit", "3")

    dry = json.loads(invoke("propagate", root, "--dry-run", "--json"))
    assert dry["event_id"] is None and dry["proposals"]
    out = invoke("propagate", root, "--annotator", "bob")
    assert "labelled" in out and "undo" in out
    assert proj.history(limit=1)[0].source == "propagated"

    started = json.loads(invoke("audit", root, "--sample", "6", "--seed", "3", "--json"))
    audit = started["audit_id"]
    listing = json.loads(invoke("audit", root, "--id", str(audit), "--json", "--limit", "100"))
    assert len(listing) == started["sampled"] >= 6
    first = listing[0]["item_id"]
    assert "correct" in invoke("audit", root, "--id", str(audit), "--item", str(first),
                               "--verdict", "correct")
    rep = json.loads(invoke("audit", root, "--id", str(audit), "--report", "--json"))
    assert rep["reviewed"] == 1 and rep["overall"]["accuracy"] == 1.0
    assert "overall" in invoke("audit", root, "--id", str(audit), "--report")
    with pytest.raises(UsageError):
        runner.invoke(commands, ["audit", root], catch_exceptions=False)
    with pytest.raises(UsageError):
        runner.invoke(commands, ["audit", root, "--id", str(audit), "--item", str(first)],
                      catch_exceptions=False)
