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


def fiftyone(folder: str) -> dict:
    """FiftyOne's own importers: every split folder of a fiftyone or coco export.

    Layout: image classification (labels.json + data/), video tree (<class>/<video>), COCO
    (data/ + labels.json with categories and annotations).
    """
    import fiftyone as fo

    out: dict = {}
    for root, dirs, files in sorted(os.walk(folder)):
        rel = os.path.relpath(root, folder)
        kind = None
        if "labels.json" in files and "data" in dirs:
            with open(os.path.join(root, "labels.json"), encoding="utf-8") as fh:
                kind = "coco" if "images" in json.load(fh) else "image"
        elif os.path.basename(root) in ("video", "train", "val", "test") and any(
                f.endswith(".mp4") for d in dirs for f in os.listdir(os.path.join(root, d))):
            kind = "video"
        if kind is None:
            continue
        name = f"curator-{abs(hash((folder, rel)))}"
        if kind == "image":
            ds = fo.Dataset.from_dir(dataset_dir=root, name=name, label_field="truth",
                                     dataset_type=fo.types.FiftyOneImageClassificationDataset)
            labels = {os.path.basename(s.filepath).split("-", 1)[0]: s.truth.label
                      if s.truth else None for s in ds}
        elif kind == "video":
            ds = fo.Dataset.from_dir(dataset_dir=root, name=name, label_field="truth",
                                     dataset_type=fo.types.VideoClassificationDirectoryTree)
            labels = {os.path.relpath(s.filepath, root): s.truth.label for s in ds}
        else:
            ds = fo.Dataset.from_dir(dataset_dir=root, name=name, label_field="truth",
                                     dataset_type=fo.types.COCODetectionDataset,
                                     label_types="detections")
            labels = {os.path.basename(s.filepath).split("-", 1)[0]:
                      [d.label for d in s.truth.detections] if s.truth else [] for s in ds}
        out[rel] = {"kind": kind, "media_type": ds.media_type, "count": len(ds),
                    "labels": labels}
        ds.delete()
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _readme_steps(folder: str) -> tuple[str, str]:
    """The document root and the storage path the export's README tells users to set."""
    import re
    import shlex

    for root, _, files in os.walk(folder):
        if "README.md" in files:
            with open(os.path.join(root, "README.md"), encoding="utf-8") as fh:
                text = fh.read()
            line = re.search(r"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=(.*)", text).group(1)
            storage = re.search(r"absolute local path `([^`]+)`", text).group(1)
            return shlex.split(line)[0], storage
    raise SystemExit("no README with the local-files steps in the export")


def labelstudio(folder: str) -> dict:
    """A real Label Studio server on 127.0.0.1, set up exactly as the export's README says:
    local files serving, a project per sub-export with its config, a local-files storage, the
    task import (validated by the server), and one media URL fetched back."""
    import subprocess
    import time

    import requests

    port, data = _free_port(), os.environ["LS_DATA"]
    root, storage_path = _readme_steps(folder)
    env = dict(os.environ, LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
               LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=root, LABEL_STUDIO_BASE_DATA_DIR=data,
               LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="false", DJANGO_DB="sqlite")
    exe = os.path.join(os.path.dirname(sys.executable), "label-studio")
    user, password = "curator@example.com", "curator-test-1"
    server = subprocess.Popen([exe, "start", "--no-browser", "--host", "127.0.0.1", "--port",
                               str(port), "--username", user, "--password", password],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    out: dict = {}
    try:
        deadline = time.time() + 900
        while True:
            try:
                if requests.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit("Label Studio did not start")
            time.sleep(2)
        http = requests.Session()
        http.get(f"{base}/user/login/")
        login = http.post(f"{base}/user/login/", data={
            "email": user, "password": password,
            "csrfmiddlewaretoken": http.cookies.get("csrftoken")},
            headers={"Referer": f"{base}/user/login/"})
        assert login.ok, login.status_code
        http.headers.update({"X-CSRFToken": http.cookies.get("csrftoken", ""),
                             "Referer": base})
        for part, _, files in sorted(os.walk(folder)):
            if "tasks.json" not in files:
                continue
            with open(os.path.join(part, "labeling_config.xml"), encoding="utf-8") as fh:
                config = fh.read()
            with open(os.path.join(part, "tasks.json"), encoding="utf-8") as fh:
                tasks = json.load(fh)
            project = http.post(f"{base}/api/projects", json={
                "title": os.path.relpath(part, folder)[:50], "label_config": config})
            assert project.status_code == 201, project.text[:2000]
            pid = project.json()["id"]
            storage = http.post(f"{base}/api/storages/localfiles", json={
                "project": pid, "path": storage_path, "title": "media", "use_blob_urls": False})
            assert storage.status_code == 201, storage.text[:2000]
            imported = http.post(f"{base}/api/projects/{pid}/import", json=tasks)
            assert imported.status_code == 201, imported.text[:2000]
            listed = http.get(f"{base}/api/tasks", params={"project": pid, "page_size": 10000,
                                                           "fields": "all"}).json()
            listed = listed["tasks"] if isinstance(listed, dict) else listed
            key = next(k for k in ("image", "audio", "video") if k in tasks[0]["data"])
            media = http.get(base + listed[0]["data"][key])
            out[os.path.relpath(part, folder)] = {
                "key": key, "tasks": len(listed),
                "predictions": sum(t.get("total_predictions", 0) for t in listed),
                "annotations": sum(t.get("total_annotations", 0) for t in listed),
                "media_status": media.status_code, "media_bytes": len(media.content),
                "media_path": listed[0]["data"]["path"]}
    finally:
        server.terminate()
        server.wait(timeout=60)
    return out


LOADERS = {"hf": hf, "coco": coco, "wds": wds, "fiftyone": fiftyone, "labelstudio": labelstudio}

if __name__ == "__main__":
    kind, folder = sys.argv[1], sys.argv[2]
    print(json.dumps(LOADERS[kind](folder), default=str))
