"""`curator doctor` says which faiss build is installed, whether it has GPU support, and what to
install; a relative --weights path is stored resolved; --device takes cuda:N."""

from __future__ import annotations

import json
import sys
import types

from click.testing import CliRunner

from curator.cli import cli
from curator.doctor import FAISS_SWAP, faiss_report


def test_cpu_faiss_on_a_gpu_machine_names_the_swap_command():
    report = faiss_report(cuda=True)
    assert report["installed"].startswith("faiss-cpu ")
    assert report["build"].startswith("CPU only")
    assert FAISS_SWAP in report["advice"] and "CUDA GPU" in report["advice"]


def test_gpu_build_is_recognised(monkeypatch):
    fake = types.SimpleNamespace(__version__="1.9.0", StandardGpuResources=object,
                                 get_num_gpus=lambda: 2)
    monkeypatch.setitem(sys.modules, "faiss", fake)
    report = faiss_report(cuda=True)
    assert report["build"] == "GPU support" and report["gpus"] == 2
    assert report["advice"] == "none" or "overwrite" in report["advice"]


def test_doctor_prints_the_faiss_build():
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    faiss = json.loads(result.output)["faiss"]
    assert faiss["build"].startswith(("CPU only", "GPU support"))
    assert faiss["advice"]


def test_device_accepts_cuda_n_and_rejects_nonsense(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(cli, ["embed", str(tmp_path / "nope"), "--device", "gpu0"])
    assert bad.exit_code == 2 and "cuda:N" in bad.output
    ok = runner.invoke(cli, ["embed", str(tmp_path / "nope"), "--device", "cuda:1"])
    assert "is not a device" not in ok.output  # parsed; fails later on the missing project


def test_ray_flags_need_ray(tmp_path):
    result = CliRunner().invoke(cli, ["embed", str(tmp_path), "--path-map", "/a=/b"])
    assert result.exit_code == 2 and "need --ray" in result.output
    result = CliRunner().invoke(cli, ["embed", str(tmp_path), "--ray", "--ray-actors", "3:1"])
    assert result.exit_code == 2 and "MAX is below MIN" in result.output


def test_relative_weights_path_is_stored_resolved(tmp_path, monkeypatch, media):
    import pytest

    from curator.errors import CuratorError
    from curator.project import Project

    media.image(tmp_path / "src" / "a.png")
    weights = tmp_path / "w" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"not a checkpoint")
    with Project.create(tmp_path / "proj", [tmp_path / "src"]) as proj:
        proj.scan()
        monkeypatch.chdir(tmp_path / "w")
        with pytest.raises(CuratorError) as err:
            proj.embed("ViT-B-32", "classic", weights="model.safetensors", device="cpu")
        params = proj.catalog.db.execute(
            "SELECT params FROM runs WHERE kind = 'embed' ORDER BY id DESC").fetchone()[0]
    assert json.loads(params)["weights"] == str(weights.resolve())
    assert str(weights.resolve()) in str(err.value)  # the junk file is refused by its full path


def test_index_passes_ray_options_and_cuda_n_to_the_pipeline(tmp_path, monkeypatch):
    """`curator index --ray ADDRESS --path-map` reaches the pipeline's options (a real project
    opened; the pipeline stubbed out only to capture what it was given)."""
    import curator.pipeline
    from curator.distributed import RayOptions
    from curator.project import Project

    (tmp_path / "src").mkdir()
    with Project.create(tmp_path / "proj", [tmp_path / "src"]):
        pass
    seen = {}

    def fake_index(project, options, progress=None, cancel=None):
        seen["options"] = options
        raise SystemExit(0)

    monkeypatch.setattr(curator.pipeline, "index", fake_index)
    result = CliRunner().invoke(cli, ["index", str(tmp_path / "proj"), "--ray", "10.0.0.1:6379",
                                      "--path-map", "/data=/mnt/data", "--ray-actors", "2:6",
                                      "--device", "cuda:1"])
    assert result.exit_code == 0, result.output
    ray = seen["options"].ray
    assert isinstance(ray, RayOptions) and ray.address == "10.0.0.1:6379"
    assert ray.path_map == (("/data", "/mnt/data"),)
    assert (ray.min_actors, ray.max_actors) == (2, 6)
    assert seen["options"].device == "cuda:1"
