"""A malicious pickle in a CLAP model folder is refused with one line and never executed."""

from __future__ import annotations

import os
import pickle
import shutil

import pytest

from indexing.embedders.base import EmbedderUnavailable


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tiny_clap, tmp_path):
    from indexing.embedders.clap import create

    folder = tmp_path / "evil-clap"
    shutil.copytree(tiny_clap.folder, folder)
    for weights in ("model.safetensors", "pytorch_model.bin"):
        (folder / weights).unlink(missing_ok=True)
    marker = tmp_path / "pwned"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"state": _Payload(str(marker))}))
    with pytest.raises(EmbedderUnavailable) as info:
        create(model=str(folder))
    message = str(info.value)
    assert "cannot load it" in message and "\n" not in message
    assert not marker.exists()
