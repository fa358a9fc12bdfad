"""What leaves the app for training: exporters that load in the consumer tools, with a manifest.

Modules: `core` (registry, rows, the context a format writes through), `names` (safe names and
one export name per label), `selection` (rows from one read snapshot, provenance from the
labelling event), `output` (where an export may go, and the journalled swap into place),
`manifest`, `run` (one export), and one module per family of formats: `tabular`, `hf`,
`fiftyone` (and COCO, the video tree), `labelstudio`, `other` (YOLO, WebDataset, NeMo).
Splits come from the project's stored assignment (`curator.splits`), the same for every format.
"""

from __future__ import annotations

from curator.export.core import (
    COLUMNS,
    EXPORTERS,
    MODES,
    ExportContext,
    Exporter,
    ExportOptions,
    ExportReport,
    ExportRow,
    exporters,
    register_exporter,
)
from curator.export.fiftyone import write_coco, write_fiftyone, write_video_tree
from curator.export.hf import write_folder
from curator.export.labelstudio import write_labelstudio
from curator.export.names import label_folders, safe_file_name, safe_name
from curator.export.other import write_nemo, write_webdataset, write_yolo
from curator.export.output import MANIFEST, ForeignFiles, is_export
from curator.export.run import export
from curator.export.tabular import parquet_schema, write_csv, write_jsonl, write_parquet
from curator.splits import assign_splits, parse_split

__all__ = ["COLUMNS", "EXPORTERS", "MANIFEST", "MODES", "ExportContext", "ExportOptions",
           "ExportReport", "ExportRow", "Exporter", "ForeignFiles", "assign_splits", "export",
           "exporters", "is_export", "label_folders", "parquet_schema", "parse_split",
           "register_exporter", "safe_file_name", "safe_name"]

for _exporter in (
    Exporter("jsonl", write_jsonl, "one JSON object per item, every modality (items.jsonl)"),
    Exporter("csv", write_csv, "one row per item, every modality (items.csv)"),
    Exporter("parquet", write_parquet, "one row per item, every modality (items.parquet)"),
    Exporter("imagefolder", write_folder, "Hugging Face datasets imagefolder with a dataset "
             "card (labelled images)", modalities=("image",), needs_label=True,
             places_files=True),
    Exporter("audiofolder", write_folder, "Hugging Face datasets audiofolder with a dataset "
             "card (labelled audio)", modalities=("audio",), needs_label=True,
             places_files=True),
    Exporter("videofolder", write_video_tree, "video classification tree (FiftyOne "
             "VideoClassificationDirectoryTree) with kinetics.csv (labelled video)",
             modalities=("video",), needs_label=True, places_files=True),
    Exporter("fiftyone", write_fiftyone, "FiftyOne image classification dataset / video "
             "classification tree, one per modality (labelled items)",
             modalities=("image", "video"), needs_label=True, places_files=True,
             per_modality=True),
    Exporter("coco", write_coco, "COCO JSON with whole-image boxes, images in data/ (images)",
             modalities=("image",), places_files=True),
    Exporter("labelstudio", write_labelstudio, "Label Studio config and tasks, one per "
             "modality", per_modality=True),
    Exporter("yolo", write_yolo, "Ultralytics YOLO classification split/class folders "
             "(labelled images)", modalities=("image",), needs_label=True, places_files=True),
    Exporter("webdataset", write_webdataset, "WebDataset tar shards (key.ext, key.json, "
             "key.cls)"),
    Exporter("nemo", write_nemo, "NeMo audio classification manifests (labelled audio)",
             modalities=("audio",), needs_label=True),
):
    register_exporter(_exporter)
