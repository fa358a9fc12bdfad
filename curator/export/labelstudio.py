"""Label Studio: one labelling config and one task file per modality, with the right data key.

Each (sub-)export holds `labeling_config.xml` (an Image, Audio or Video object named after its
data key, and the taxonomy as Choices), `tasks.json` (one task per item, `data.<key>` the media
URL) and a README.md with the exact steps: the local-files environment variables, the storage to
add, and the import. Labels go in as `predictions` (pre-annotations to review) or as
`annotations` (`ls_as="annotations"`). Media stay where they are; Label Studio serves them through
its local-files storage (`/data/local-files/?d=<path under the document root>`), or from your own
server (`url_prefix="https://host/media"`, the same relative path appended).
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from curator import __version__
from curator.export.core import ExportContext, ExportRow

KEYS = {"image": "image", "audio": "audio", "video": "video"}
TAGS = {"image": "Image", "audio": "Audio", "video": "Video"}
LOCAL_FILES = "/data/local-files/?d="


def media_folder(paths: list[str]) -> str:
    """The folder holding every medium (the local-files storage's path)."""
    if not paths:
        return os.sep
    common = os.path.commonpath(paths)
    return common if os.path.isdir(common) else os.path.dirname(common)


def document_root(folder: str) -> str:
    """The folder Label Studio serves from: the media folder's parent (Label Studio refuses a
    storage path equal to its document root)."""
    return os.path.dirname(folder) or os.sep


def media_url(ctx: ExportContext, path: str, root: str) -> str:
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    if ctx.options.url_prefix:
        return ctx.options.url_prefix.rstrip("/") + "/" + quote(rel)
    return LOCAL_FILES + quote(rel)


def config(ctx: ExportContext, key: str) -> str:
    choices = "\n".join(f"    <Choice value={quoteattr(path)}/>" for path in sorted(ctx.classes)
                        if any(t["path"] == path for t in ctx.taxonomy))
    return (f'<View>\n  <{TAGS[key]} name="{key}" value="${key}"/>\n'
            f'  <Choices name="label" toName="{key}" choice="single-radio" showInline="false">\n'
            f"{choices}\n  </Choices>\n</View>\n")


def task(ctx: ExportContext, row: ExportRow, key: str, root: str) -> dict:
    item = {"id": row.item_id,
            "data": {key: media_url(ctx, row.path, root), "item_id": row.item_id,
                     "path": row.path, "split": row.split, "state": row.label_state,
                     "duplicate_group": row.duplicate_group}}
    if row.label_state == "labelled" and row.label_path:
        result = [{"from_name": "label", "to_name": key, "type": "choices",
                   "value": {"choices": [row.label_path]}}]
        if ctx.options.ls_as == "annotations":
            item["annotations"] = [{"result": result, "ground_truth": False}]
        else:
            item["predictions"] = [{"model_version": f"curator-{__version__}", "score": 1.0,
                                    "result": result}]
    return item


def write_labelstudio(ctx: ExportContext) -> None:
    key = KEYS[ctx.modality or "image"]
    tasks = [task_row for chunk in ctx.chunks() for task_row in chunk]
    storage = media_folder([row.path for row in tasks])
    root = document_root(storage)
    with ctx.open("tasks.json") as fh:
        fh.write("[\n")
        for k, row in enumerate(tasks):
            fh.write((",\n" if k else "") + json.dumps(task(ctx, row, key, root),
                                                       ensure_ascii=False))
        fh.write("\n]\n")
    with ctx.open("labeling_config.xml") as fh:
        fh.write(config(ctx, key))
    with ctx.open("README.md") as fh:
        fh.write(readme(ctx, key, root, storage))


def readme(ctx: ExportContext, key: str, root: str, storage: str) -> str:
    serve = (f"Media URLs start with `{ctx.options.url_prefix}`: serve `{root}` there."
             if ctx.options.url_prefix else "\n".join([
                 "1. Start Label Studio with local file serving, rooted at the media folder:",
                 "",
                 "   ```sh",
                 "   export LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true",
                 f"   export LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={quote_sh(root)}",
                 "   label-studio start",
                 "   ```",
                 "",
                 "2. Create a project; in *Settings > Labeling Interface > Code* paste "
                 "`labeling_config.xml`.",
                 "3. In *Settings > Cloud Storage > Add Source Storage* choose *Local files*, "
                 f"absolute local path `{storage}`, and leave *Treat every bucket object as a "
                 "source file* off. Add it; do not sync it (the tasks come from tasks.json).",
                 "4. Import `tasks.json` (*Import*).",
                 "",
                 f"Each task's `data.{key}` is `/data/local-files/?d=<path under {root}>`."]))
    return "\n".join([
        f"# Label Studio tasks ({ctx.modality or key})", "",
        f"Exported by Curator from `{ctx.project}`; the labels are "
        f"{ctx.options.ls_as} (`choices` of the control `label` on `{key}`).", "", serve, "",
        "With the API: `POST /api/projects` with `label_config` = labeling_config.xml, then "
        "`POST /api/projects/<id>/import` with tasks.json.", ""])


def quote_sh(text: str) -> str:
    import shlex

    return shlex.quote(text)
