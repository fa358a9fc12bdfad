"""Load a Curator export with a real consumer tool and print what it saw, as JSON.

Run by the consumer tests with the interpreter of the venv that holds the tool
(`.venv-consumers`: datasets, pycocotools, webdataset; `.venv-fiftyone`; `.venv-labelstudio`),
so the tools' pins never meet the app's. Usage: python load.py KIND FOLDER [ARGS...]
"""

from __future__ import annotations

import json
import os
import sys


def hf(folder: str) -> dict:
    """`datasets.load_dataset(folder)`: the dataset card decides splits and features."""
    from datasets import Audio, ClassLabel, load_dataset

    ds = load_dataset(folder, cache_dir=os.environ.get("HF_DATASETS_CACHE"))
    out: dict = {"splits": {}}
    for split, part in ds.items():
        label = part.features["label"]
        assert isinstance(label, ClassLabel), type(label)
        base = "image" if "image" in part.features else "audio"
        if base == "audio":
            # Decoding needs torchcodec; the file itself is what the layout must deliver.
            part = part.cast_column("audio", Audio(decode=False))
        rows = []
        for row in part:
            media = row[base]
            if base == "image":
                media.load()
                size = list(media.size)
            else:
                import soundfile

                with soundfile.SoundFile(media["path"]) as sound:
                    size = [sound.frames, sound.samplerate]
            rows.append({"item_id": row["item_id"], "label": label.int2str(row["label"]),
                         "label_id": row["label"], "label_path": row["label_path"],
                         "size": size})
        out["splits"][split] = {"names": label.names, "rows": rows,
                                "features": {k: str(v) for k, v in part.features.items()}}
    return out


def coco(folder: str) -> dict:
    """pycocotools: every labels.json under the export."""
    from pycocotools.coco import COCO

    out = {}
    for root, _, files in os.walk(folder):
        if "labels.json" in files:
            api = COCO(os.path.join(root, "labels.json"))
            cats = {c["id"]: c["name"] for c in api.loadCats(api.getCatIds())}
            images = {}
            for image_id in api.getImgIds():
                anns = api.loadAnns(api.getAnnIds(imgIds=[image_id]))
                info = api.loadImgs([image_id])[0]
                assert os.path.isfile(os.path.join(root, "data", info["file_name"]))
                images[image_id] = [cats[a["category_id"]] for a in anns]
                for a in anns:
                    assert a["bbox"] == [0, 0, info["width"], info["height"]]
                    assert a["area"] == info["width"] * info["height"]
            out[os.path.relpath(root, folder)] = images
    return out


def wds(folder: str) -> dict:
    """webdataset: read every shard, decode json and cls."""
    import glob

    import webdataset as wds_mod

    shards = sorted(glob.glob(os.path.join(folder, "shards", "*.tar")))
    out = {}
    for shard in shards:
        for sample in wds_mod.WebDataset(shard, shardshuffle=False).decode():
            meta = sample["json"]
            media = [k for k in sample if k not in ("__key__", "__url__", "json", "cls",
                                                     "__local_path__")]
            out[meta["item_id"]] = {"key": sample["__key__"], "cls": sample.get("cls"),
                                    "split": meta["split"], "label": meta["label"],
                                    "media": media, "bytes": len(sample[media[0]])
                                    if isinstance(sample[media[0]], bytes) else None,
                                    "shard": os.path.basename(shard)}
    return out


LOADERS = {"hf": hf, "coco": coco, "wds": wds}

if __name__ == "__main__":
    kind, folder = sys.argv[1], sys.argv[2]
    print(json.dumps(LOADERS[kind](folder), default=str))
