"""The coverage report: what is labelled, by label, source folder, modality and label source.

`build_report` gathers the numbers with a handful of grouped queries (fast on a million items);
`write_html` renders them as one self-contained HTML file (inline CSS and SVG bar charts, every
text escaped, no external assets) and `render_text` for the terminal.
"""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path
from typing import Any, Optional, TypedDict

from curator.catalog import Catalog
from curator.connection import utcnow
from curator.errors import UsageError
from curator.groups import latest_run_id
from curator.labels import labels

log = logging.getLogger(__name__)

STATES = ("labelled", "noise", "mixed", "unlabelled")
TOP_UNDECIDED = 10
_COLOURS = {"labelled": "#2ca02c", "noise": "#7f7f7f", "mixed": "#ff7f0e",
            "unlabelled": "#d0d0d0"}


def _breakdown(db: Any, key_sql: str, extra_join: str = "") -> list[dict[str, Any]]:
    """Per value of `key_sql`: ok items counted by label state."""
    rows = db.execute(
        f"SELECT {key_sql} AS k, COALESCE(il.state, 'unlabelled'), COUNT(*) FROM items "
        f"LEFT JOIN item_labels il ON il.item_id = items.id {extra_join} "
        "WHERE items.status = 'ok' GROUP BY 1, 2 ORDER BY 1").fetchall()
    out: dict[Any, dict[str, Any]] = {}
    for key, state, n in rows:
        entry = out.setdefault(key, {"name": key, **{s: 0 for s in STATES}, "total": 0})
        entry[state] = n
        entry["total"] += n
    return sorted(out.values(), key=lambda e: (-e["total"], str(e["name"])))


class CoverageReport(TypedDict):
    """Coverage of a project's labels as a JSON-ready document (`render_text`, `write_html`)."""

    project: str
    created: str  # ISO-8601 UTC
    totals: dict[str, int]  # ok items by state, and "total"
    by_label: list[dict[str, Any]]  # label, name, colour, items
    by_source_folder: list[dict[str, Any]]  # source, folder, name, total and per state
    by_modality: list[dict[str, Any]]  # name, total and per state
    by_label_source: dict[str, int]  # group, manual, propagated, imported, ...
    groups: Optional[dict[str, Any]]  # None before any clustering
    duplicates: Optional[dict[str, Any]]  # None before any duplicate search


def build_report(catalog: Catalog) -> CoverageReport:
    """Coverage of the project's labels.

    Returns:
        A JSON-ready dict: `totals` (ok items by state), `by_label` (every live label with its
        item count), `by_source_folder` (top-level folder under each source), `by_modality`,
        `by_label_source` (group, manual, propagated, imported), `groups` (decided groups of
        the current clustering and the largest undecided ones) and `duplicates` (when a
        duplicate search ran).
    """
    db = catalog.db
    totals = {s: 0 for s in STATES}
    for state, n in db.execute(
            "SELECT COALESCE(il.state, 'unlabelled'), COUNT(*) FROM items LEFT JOIN item_labels "
            "il ON il.item_id = items.id WHERE items.status = 'ok' GROUP BY 1"):
        totals[state] = n
    totals["total"] = sum(totals[s] for s in STATES)
    per_label = dict(db.execute(
        "SELECT il.label_id, COUNT(*) FROM item_labels il JOIN items ON items.id = il.item_id "
        "WHERE items.status = 'ok' AND il.state = 'labelled' GROUP BY 1").fetchall())
    by_label = [{"label": lab.path, "name": lab.name, "colour": lab.colour,
                 "items": per_label.get(lab.id, 0)}
                for lab in labels(catalog, with_counts=False)]
    by_source_folder = _breakdown(
        db, "sources.root || char(31) || CASE WHEN instr(items.path, '/') > 0 THEN "
            "substr(items.path, 1, instr(items.path, '/') - 1) ELSE '.' END",
        "JOIN sources ON sources.id = items.source_id")
    for entry in by_source_folder:
        root, folder = str(entry.pop("name")).split("\x1f", 1)
        entry.update(source=root, folder=folder, name=folder if folder != "." else "(top level)")
    by_modality = _breakdown(db, "COALESCE(items.modality, 'unknown')")
    by_label_source = {source: n for source, n in db.execute(
        "SELECT e.source, COUNT(*) FROM item_labels il JOIN events e ON e.id = il.event_id "
        "JOIN items ON items.id = il.item_id WHERE items.status = 'ok' GROUP BY 1 ORDER BY 1")}
    return CoverageReport(
        project=str(catalog.root),
        created=utcnow(),
        totals=totals,
        by_label=by_label,
        by_source_folder=by_source_folder,
        by_modality=by_modality,
        by_label_source=by_label_source,
        groups=_groups(catalog),
        duplicates=_duplicates(catalog),
    )


def _groups(catalog: Catalog) -> Optional[dict[str, Any]]:
    run_id = latest_run_id(catalog)
    if run_id is None:
        return None
    db = catalog.db
    by_status = {s: n for s, n in db.execute(
        "SELECT status, COUNT(*) FROM groups WHERE run_id = ? AND state = 'active' GROUP BY 1",
        [run_id])}
    total = sum(by_status.values())
    top = [{"group_id": g, "size": size, "space": space, "topic": topic, "impurity": impurity}
           for g, size, space, topic, impurity in db.execute(
               "SELECT group_id, size, space, topic, impurity FROM groups WHERE run_id = ? AND "
               "state = 'active' AND status = 'undecided' ORDER BY size DESC, group_id LIMIT ?",
               [run_id, TOP_UNDECIDED])]
    undecided_items = db.execute(
        "SELECT COUNT(*) FROM assignments a JOIN groups g ON g.run_id = a.run_id AND "
        "g.group_id = a.group_id LEFT JOIN item_labels il ON il.item_id = a.item_id "
        "WHERE a.run_id = ? AND g.status = 'undecided' AND il.item_id IS NULL",
        [run_id]).fetchone()[0]
    return {"run_id": run_id, "total": total, "decided": total - by_status.get("undecided", 0),
            "by_status": by_status, "top_undecided": top,
            "unlabelled_items_in_undecided_groups": undecided_items}


def _duplicates(catalog: Catalog) -> Optional[dict[str, Any]]:
    from curator.dedup import load_duplicates

    latest = load_duplicates(catalog)
    if latest is None:
        return None
    return {"created": latest.created, "params": latest.params, **latest.summary()}


# --- text -------------------------------------------------------------------------------------


def _pct(n: int, total: int) -> str:
    return f"{100.0 * n / total:5.1f}%" if total else "   - "


def render_text(report: dict[str, Any], width: int = 30) -> str:
    """The report for a terminal: plain text with bars of '#'."""
    t = report["totals"]
    total = t["total"]
    lines = [f"coverage of {report['project']} ({report['created']})",
             f"{total} items: " + ", ".join(f"{t[s]} {s} ({_pct(t[s], total).strip()})"
                                           for s in STATES)]

    def bar(n: int, most: int) -> str:
        return "#" * (round(width * n / most) if most else 0)

    def table(title: str, rows: list[tuple[str, int, int]]) -> None:
        lines.append("")
        lines.append(title)
        most = max((n for _, n, _ in rows), default=0)
        name_w = min(max((len(r[0]) for r in rows), default=5), 40)
        for name, n, of in rows:
            shown = name if len(name) <= 40 else name[:37] + "..."
            lines.append(f"  {shown:<{name_w}} {n:>9} {_pct(n, of) if of else '':>6}  "
                         f"{bar(n, most)}")

    table("by label (items)", [(r["label"], r["items"], total) for r in report["by_label"]]
          or [("(no labels yet)", 0, 0)])
    table("labelled by source folder (labelled / total)",
          [(f"{r['name']} [{os.path.basename(r['source']) or r['source']}]", r["labelled"],
            r["total"]) for r in report["by_source_folder"]])
    table("labelled by modality (labelled / total)",
          [(r["name"], r["labelled"], r["total"]) for r in report["by_modality"]])
    table("current labels by how they were given",
          [(k, v, total) for k, v in report["by_label_source"].items()] or [("(none)", 0, 0)])
    g = report.get("groups")
    lines.append("")
    if g is None:
        lines.append("groups: no clustering yet (run `curator cluster`)")
    else:
        lines.append(f"groups of run {g['run_id']}: {g['decided']} of {g['total']} decided "
                     f"({', '.join(f'{n} {s}' for s, n in sorted(g['by_status'].items()))})")
        if g["top_undecided"]:
            lines.append(f"  largest undecided groups ({g['unlabelled_items_in_undecided_groups']}"
                         " unlabelled items wait in undecided groups):")
            for row in g["top_undecided"]:
                lines.append(f"    group {row['group_id']:>6}  {row['size']:>7} items  "
                             f"{row['space']}")
    d = report.get("duplicates")
    if d is not None:
        lines.append(f"duplicates ({d['created']}): {d['exact_groups']} exact and "
                     f"{d['near_groups']} near groups, {d['removable']} items removable, "
                     f"{d['outliers']} outliers ranked")
    return "\n".join(lines) + "\n"


# --- HTML -------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _bars_svg(rows: list[tuple[str, dict[str, int]]], stacked: bool = True,
              colour: str = "#1f77b4") -> str:
    """A horizontal bar chart as inline SVG: one bar per row, stacked by label state."""
    if not rows:
        return "<p class=\"empty\">nothing yet</p>"
    bar_h, gap, label_w, chart_w = 18, 6, 240, 420
    most = max((sum(parts.values()) for _, parts in rows), default=0) or 1
    height = len(rows) * (bar_h + gap) + gap
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + chart_w + 90}" '
            f'height="{height}" role="img">')]
    for i, (name, parts) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        shown = name if len(name) <= 34 else name[:31] + "..."
        out.append(f'<text x="{label_w - 6}" y="{y + bar_h - 5}" text-anchor="end">'
                   f"<title>{_e(name)}</title>{_e(shown)}</text>")
        x = float(label_w)
        for state, n in parts.items():
            if n <= 0:
                continue
            w = chart_w * n / most
            fill = _COLOURS.get(state, colour) if stacked else colour
            out.append(f'<rect x="{x:.1f}" y="{y}" width="{max(w, 0.5):.1f}" height="{bar_h}" '
                       f'fill="{fill}"><title>{_e(name)}: {n} {_e(state)}</title></rect>')
            x += w
        out.append(f'<text x="{x + 4:.1f}" y="{y + bar_h - 5}">{sum(parts.values())}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _state_parts(row: dict[str, Any]) -> dict[str, int]:
    return {s: int(row.get(s, 0)) for s in STATES}


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { border-bottom: 1px solid #ddd; padding: .2em .8em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
svg text { font: 12px system-ui, sans-serif; fill: #222; }
.legend span { display: inline-block; margin-right: 1em; }
.legend i { display: inline-block; width: .9em; height: .9em; margin-right: .3em; }
.empty { color: #888; }
"""


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML document."""
    t = report["totals"]
    total = t["total"]
    legend = "".join(f'<span><i style="background:{_COLOURS[s]}"></i>{_e(s)}</span>'
                     for s in STATES)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8"/>',
        f"<title>Coverage report: {_e(report['project'])}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<h1>Coverage report</h1>",
        f"<p>Project <code>{_e(report['project'])}</code>, {_e(report['created'])}.</p>",
        f'<p class="legend">{legend}</p>',
        "<h2>Items by label state</h2>",
        _bars_svg([("all items", _state_parts(t))]),
        _table(["state", "items", "share"],
               [[s, t[s], _pct(t[s], total).strip()] for s in STATES] + [["total", total, ""]]),
        "<h2>Items per label</h2>",
        _bars_svg([(r["label"], {"labelled": r["items"]}) for r in report["by_label"]],
                  stacked=False),
        _table(["label", "items", "share"], [[r["label"], r["items"], _pct(r["items"], total)
                                             .strip()] for r in report["by_label"]]),
        "<h2>By source folder</h2>",
        _bars_svg([(f"{r['name']} ({os.path.basename(r['source']) or r['source']})",
                    _state_parts(r)) for r in report["by_source_folder"]]),
        _table(["folder", "source", *STATES, "total"],
               [[r["name"], r["source"], *[r[s] for s in STATES], r["total"]]
                for r in report["by_source_folder"]]),
        "<h2>By modality</h2>",
        _bars_svg([(r["name"], _state_parts(r)) for r in report["by_modality"]]),
        _table(["modality", *STATES, "total"],
               [[r["name"], *[r[s] for s in STATES], r["total"]] for r in report["by_modality"]]),
        "<h2>Current labels by how they were given</h2>",
        _table(["source", "items"], [[k, v] for k, v in report["by_label_source"].items()]),
        "<h2>Groups</h2>",
    ]
    g = report.get("groups")
    if g is None:
        parts.append('<p class="empty">No clustering yet.</p>')
    else:
        parts.append(f"<p>Clustering run {_e(g['run_id'])}: {_e(g['decided'])} of "
                     f"{_e(g['total'])} groups decided; "
                     f"{_e(g['unlabelled_items_in_undecided_groups'])} unlabelled items wait in "
                     "undecided groups.</p>")
        parts.append(_table(["status", "groups"], [[k, v] for k, v in
                                                   sorted(g["by_status"].items())]))
        parts.append("<h2>Largest undecided groups</h2>")
        parts.append(_table(["group", "items", "space", "topic", "impurity"],
                            [[r["group_id"], r["size"], r["space"], r["topic"],
                              f"{(r['impurity'] or 0):.3f}"] for r in g["top_undecided"]]))
    d = report.get("duplicates")
    parts.append("<h2>Duplicates</h2>")
    if d is None:
        parts.append('<p class="empty">No duplicate search yet (run <code>curator dedup</code>).'
                     "</p>")
    else:
        parts.append(_table(["", "value"], [
            ["searched", d["created"]], ["threshold", d["params"].get("threshold")],
            ["exact groups", d["exact_groups"]], ["near groups", d["near_groups"]],
            ["items in groups", d["items_in_groups"]], ["removable", d["removable"]],
            ["outliers ranked", d["outliers"]]]))
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def write_html(report: dict[str, Any], path: Path | str) -> Path:
    """Write the report as one self-contained HTML file, atomically (temporary file, rename).

    Returns:
        The path written.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file name such as report.html")
    from curator.stores import write_text_atomic

    return write_text_atomic(path, render_html(report))
