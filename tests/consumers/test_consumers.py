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
