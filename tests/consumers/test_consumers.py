"""Every export format loads in its real consumer tool with the catalog's counts and labels.

Each tool runs in its own venv that `make test` builds (see the Makefile's `consumers` target):
`datasets` 5 (.venv-consumers, with pycocotools and webdataset), `datasets` 3 (.venv-datasets3,
which reads audio without torch), FiftyOne (.venv-fiftyone) and Label Studio (.venv-labelstudio).
"""

from __future__ import annotations

import json
from collections import Counter

from curator.export import export

SPLIT = "train=0.6,val=0.2,test=0.2"


def labelled(expected: dict[int, str], project, modality: str) -> dict[int, str]:
    modal = {i["id"]: i["modality"] for i in project.items()}
    return {i: lab for i, lab in expected.items() if modal[i] == modality
            and lab not in ("noise", "mixed", "unlabelled")}


def check_hf(seen: dict, want: dict[int, str], split: bool) -> None:
    names = {s: part["names"] for s, part in seen["splits"].items()}
    assert len({tuple(n) for n in names.values()}) == 1  # one ClassLabel order in every split
    features = {s: part["features"] for s, part in seen["splits"].items()}
    assert len({json.dumps(f, sort_keys=True) for f in features.values()}) == 1
    got = {}
    for part in seen["splits"].values():
        for row in part["rows"]:
            got[row["item_id"]] = row["label_path"]
            assert part["names"][row["label_id"]] == row["label"]
            assert row["size"] is not None
    assert got == want  # row counts and labels equal the catalog's
    assert set(seen["splits"]) == ({"train", "val", "test"} if split else {"train"})


def test_imagefolder_loads_in_datasets_with_and_without_splits(mixed, consume, tmp_path):
    project, expected = mixed
    want = labelled(expected, project, "image")
    export(project, "imagefolder", tmp_path / "plain")
    check_hf(consume("consumers", "hf", tmp_path / "plain", tmp=tmp_path), want, split=False)
    export(project, "imagefolder", tmp_path / "split", split=SPLIT)
    seen = consume("consumers", "hf", tmp_path / "split", tmp=tmp_path)
    check_hf(seen, want, split=True)
    names = seen["splits"]["train"]["names"]
    assert "(test) tube" in names and "(dev) board" in names and "_.hidden" in names
    # datasets 3 reads the same folders (and audio without torch)
    check_hf(consume("datasets3", "hf", tmp_path / "split", tmp=tmp_path), want, split=True)


def test_audiofolder_loads_in_datasets(mixed, consume, tmp_path):
    project, expected = mixed
    export(project, "audiofolder", tmp_path / "a", split=SPLIT)
    seen = consume("datasets3", "hf", tmp_path / "a", tmp=tmp_path)
    check_hf(seen, labelled(expected, project, "audio"), split=True)
    rates = {row["size"][1] for part in seen["splits"].values() for row in part["rows"]}
    assert rates == {16000}


def test_coco_loads_in_pycocotools_with_whole_image_boxes(mixed, consume, tmp_path):
    project, expected = mixed
    export(project, "coco", tmp_path / "c", split=SPLIT)
    seen = consume("consumers", "coco", tmp_path / "c", tmp=tmp_path)
    names = json.loads((tmp_path / "c" / "manifest.json").read_text())["label_names"]
    got = {int(i): [names[c] for c in cats] for part in seen.values() for i, cats in part.items()}
    images = {i: lab for i, lab in expected.items() if i in got}
    assert len(images) == sum(1 for i in project.items() if i["modality"] == "image")
    for item, label in images.items():
        assert got[item] == ([] if label in ("noise", "mixed", "unlabelled") else [label])
    assert set(seen) == {"train", "val", "test", "unassigned"}


def test_webdataset_reads_every_shard(mixed, consume, tmp_path):
    project, expected = mixed
    export(project, "webdataset", tmp_path / "w", split=SPLIT, shard_size=7)
    seen = {int(k): v for k, v in consume("consumers", "wds", tmp_path / "w").items()}
    assert {i: (v["label"] or "x") for i, v in seen.items()} == {
        i: (lab if lab not in ("noise", "mixed", "unlabelled") else "x")
        for i, lab in expected.items()}
    classes = (tmp_path / "w" / "classes.txt").read_text().splitlines()
    names = json.loads((tmp_path / "w" / "manifest.json").read_text())["label_names"]
    sizes = {i["id"]: i["size"] for i in project.items()}
    for item, sample in seen.items():
        if sample["cls"] is not None:
            assert names[classes[sample["cls"]]] == expected[item]
        assert sample["bytes"] == sizes[item]
        assert sample["shard"].startswith(sample["split"] or "unassigned")
    assert Counter(s["shard"] for s in seen.values()).most_common(1)[0][1] <= 7


def test_fiftyone_imports_its_layouts_and_coco_with_labels(mixed, consume, tmp_path):
    import csv

    project, expected = mixed
    both = tmp_path / "fo"
    report = export(project, "fiftyone", both / "fiftyone", split=SPLIT)
    assert report.parts == ("image", "video")
    export(project, "coco", both / "coco", split=SPLIT)
    seen = consume("fiftyone", "fiftyone", both, tmp=tmp_path)  # one database start for both
    names = json.loads((both / "fiftyone" / "manifest.json").read_text())["label_names"]
    images, videos, coco = {}, {}, {}
    for rel, part in seen.items():
        fmt, *rest = rel.split("/")
        if fmt == "fiftyone" and part["kind"] == "image":
            assert part["media_type"] == "image"
            images.update({int(k): names[v] for k, v in part["labels"].items()})
        elif fmt == "fiftyone":
            assert part["media_type"] == "video" and part["kind"] == "video"
            with open(both / "fiftyone" / "video" / "kinetics.csv", encoding="utf-8") as fh:
                by_path = {row["path"]: int(row["item_id"]) for row in csv.DictReader(fh)}
            videos.update({by_path[f"{rest[-1]}/{k}"]: names[v]
                           for k, v in part["labels"].items()})
        else:
            coco.update({int(k): [names[c] for c in v] for k, v in part["labels"].items()})
    assert images == labelled(expected, project, "image")
    assert videos == labelled(expected, project, "video")
    image_ids = {i["id"] for i in project.items() if i["modality"] == "image"}
    assert coco == {i: ([] if lab in ("noise", "mixed", "unlabelled") else [lab])
                    for i, lab in expected.items() if i in image_ids}


def test_label_studio_server_imports_every_modality_and_serves_the_media(mixed, consume,
                                                                          tmp_path):
    project, expected = mixed
    both = tmp_path / "lsx"
    report = export(project, "labelstudio", both / "pred", split=SPLIT)
    assert report.parts == ("image", "audio", "video")
    export(project, "labelstudio", both / "ann", modality="audio", ls_as="annotations")
    seen = consume("labelstudio", "labelstudio", both, tmp=tmp_path)  # one server for both
    modal = Counter(i["modality"] for i in project.items())
    decided = Counter(i["modality"] for i in project.items()
                      if expected[i["id"]] not in ("noise", "mixed", "unlabelled"))
    sizes = {i["abs_path"]: i["size"] for i in project.items()}
    assert set(seen) == {"ann", "pred/image", "pred/audio", "pred/video"}
    for name, part in seen.items():
        modality = name.rsplit("/", 1)[-1] if name != "ann" else "audio"
        assert part["key"] == modality and part["tasks"] == modal[modality]
        if name == "ann":
            assert part["annotations"] == decided["audio"] and part["predictions"] == 0
        else:
            assert part["predictions"] == decided[modality] and part["annotations"] == 0
        assert part["media_status"] == 200  # served through the local-files storage
        assert part["media_bytes"] == sizes[part["media_path"]]
