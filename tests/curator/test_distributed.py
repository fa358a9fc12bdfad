"""`curator embed --ray` on a real two-node Ray cluster on 127.0.0.1: the same vectors as a local
run, every item exactly once after a worker is killed, and a killed driver that resumes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from curator.distributed import RayOptions, map_path, parse_path_map
from curator.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
SPACE = "classic:v1"


def test_path_map_replaces_the_longest_whole_folder_prefix():
    pairs = parse_path_map(["/data=/mnt/data", "/data/audio/=/nfs/audio"])
    assert map_path("/data/audio/a.wav", pairs) == "/nfs/audio/a.wav"
    assert map_path("/data/img/b.jpg", pairs) == "/mnt/data/img/b.jpg"
    assert map_path("/database/c.jpg", pairs) == "/database/c.jpg"  # not a folder of /data
    assert map_path("/data", pairs) == "/mnt/data"


@pytest.mark.parametrize("entry", ["/data", "=/mnt", "/data="])
def test_path_map_without_both_sides_is_a_usage_error(entry):
    with pytest.raises(UsageError, match="OLD=NEW"):
        parse_path_map([entry])


# --- a two-node cluster -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_env(chaos: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).strip(":"),
               CURATOR_RAY_CHAOS=str(chaos))
    return env


def _stop(proc: subprocess.Popen) -> None:
    """Stop one `ray start --block` and every Ray process it started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_for_nodes(address: str, n: int, timeout: float = 120) -> None:
    import ray

    deadline = time.monotonic() + timeout
    ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    try:
        while sum(1 for node in ray.nodes() if node["Alive"]) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Ray cluster did not reach {n} nodes")
            time.sleep(0.5)
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A head node (2 CPUs) and a worker node (1 CPU) on 127.0.0.1, no dashboard, small store."""
    pytest.importorskip("ray.data")
    chaos = tmp_path_factory.mktemp("chaos")
    env = _ray_env(chaos)
    port = _free_port()
    # The socket paths live under --temp-dir and must stay short (AF_UNIX limit).
    temp = Path(f"/tmp/cur-ray-{os.getpid()}")
    common = ["--node-ip-address=127.0.0.1", "--object-store-memory=100000000",
              "--disable-usage-stats", "--block"]
    ray_bin = str(Path(sys.executable).with_name("ray"))
    log = open(temp.with_suffix(".log"), "wb")  # noqa: SIM115 - open for the cluster's life
    procs = [subprocess.Popen(
        [ray_bin, "start", "--head", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", f"--temp-dir={temp}", *common],
        env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)]
    address = f"127.0.0.1:{port}"
    old_auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        _wait_for_port(port, procs[0])
        procs.append(subprocess.Popen(
            [ray_bin, "start", f"--address={address}", "--num-cpus=1", *common],
            env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT))
        _wait_for_nodes(address, 2)
        yield {"address": address, "chaos": chaos, "env": env}
    finally:
        for proc in reversed(procs):
            _stop(proc)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
        if old_auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = old_auth


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start --head exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError("the Ray head node did not open its port")


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """The sample corpus scanned into a project, and the same project embedded locally."""
    from curator.project import Project
    from curator.sample_corpus import write_sample_corpus

    base = tmp_path_factory.mktemp("ray-corpus")
    write_sample_corpus(base / "corpus", items=30, seed=3)
    with Project.create(base / "scanned", [base / "corpus"]) as proj:
        proj.scan()
    shutil.copytree(base / "scanned", base / "local")
    with Project.open(base / "local") as proj:
        report = proj.embed("classic", "classic", batch_size=8)
        assert report.embedded > 20
        ids, vectors = proj.vectors(SPACE)
    return {"base": base, "ids": np.asarray(ids).copy(), "vectors": np.asarray(vectors).copy()}


def _copy(scanned, name: str) -> Path:
    dest = scanned["base"] / name
    shutil.copytree(scanned["base"] / "scanned", dest)
    return dest


def _assert_same_as_local(project: Path, scanned) -> None:
    """Every item embedded exactly once (one catalog row, one shard row) with local's vectors."""
    from curator.project import Project

    with Project.open(project) as proj:
        ids, vectors = proj.vectors(SPACE)
        rows = proj.catalog.db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT item_id) FROM embeddings WHERE space = ?",
            [SPACE]).fetchone()
        folder = project / proj.catalog.db.execute(
            "SELECT folder FROM spaces WHERE space = ?", [SPACE]).fetchone()[0]
    np.testing.assert_array_equal(ids, scanned["ids"])
    np.testing.assert_array_equal(np.asarray(vectors), scanned["vectors"])  # bit-identical
    assert rows == (len(scanned["ids"]), len(scanned["ids"]))
    shard_rows = sum(p.stat().st_size for p in (folder / "shards").glob("run*.f16")) // (2 * 256)
    assert shard_rows == len(scanned["ids"])


@pytest.mark.slow
def test_killed_workers_lose_only_their_batch_and_vectors_equal_a_local_run(ray_cluster, scanned):
    """A decode worker and a model actor each SIGKILL themselves mid-batch; Ray redoes that work
    and the driver still writes every item exactly once, with the local run's vectors."""
    from curator.project import Project

    chaos = ray_cluster["chaos"]
    for stage in ("decode", "embed"):
        (chaos / f"{stage}.arm").touch()
    project = _copy(scanned, "ray")
    with Project.open(project) as proj:
        report = proj.embed("classic", "classic", batch_size=4,
                            ray=RayOptions(address=ray_cluster["address"], max_actors=2,
                                           decode_items=4))
        run = proj.runs("embed", 1)[0]
        thumb = proj.thumbnail(int(scanned["ids"][0]))
    assert (chaos / "decode.fired").exists() and (chaos / "embed.fired").exists()
    assert report.embedded == len(scanned["ids"]) and report.errors == 0
    space = run.counts["spaces"][SPACE]
    assert space["cluster"]["nodes"] == 2 and space["cluster"]["cpus"] == 3
    assert space["actors"]["device"] == "cpu" and space["actors"]["max"] == 2
    assert thumb  # thumbnails come back from the workers too
    _assert_same_as_local(project, scanned)  # bit-identical, one row and one shard row each


@pytest.mark.slow
def test_killed_driver_resumes_like_a_local_run(ray_cluster, scanned):
    project = _copy(scanned, "ray-killed-driver")
    env = dict(ray_cluster["env"])
    (ray_cluster["chaos"] / "driver.arm").touch()
    cmd = [sys.executable, "-m", "curator.cli", "embed", str(project), "--model", "classic",
           "--audio-model", "classic", "--batch-size", "4", "--ray", ray_cluster["address"],
           "--ray-actors", "1:2", "--json"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    assert (ray_cluster["chaos"] / "driver.fired").exists()
    from curator.project import Project

    with Project.open(project) as proj:
        kept = proj.catalog.db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    assert 0 < kept < len(scanned["ids"])  # the first batch was committed before the kill
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    import json

    counts = json.loads(second.stdout)
    assert counts["embedded"] == len(scanned["ids"]) - kept  # only the rest was embedded again
    _assert_same_as_local(project, scanned)


@pytest.mark.slow
def test_scan_on_ray_writes_the_same_catalog_as_a_local_scan(ray_cluster, scanned, tmp_path):
    """Probing and hashing on the workers (through a path map); the driver writes the catalog."""
    from curator.project import Project
    from curator.scan import ScanOptions

    corpus = scanned["base"] / "corpus"
    mounted = tmp_path / "mnt"
    mounted.symlink_to(corpus)  # where the "workers" see the files
    cols = ("path", "modality", "status", "content_hash", "width", "height", "duration", "error")
    with Project.create(tmp_path / "p", [corpus]) as proj:
        report = proj.scan(ScanOptions(ray=RayOptions(address=ray_cluster["address"],
                                                      path_map=((str(corpus), str(mounted)),))))
        got = proj.catalog.db.execute(
            f"SELECT {', '.join(cols)} FROM items ORDER BY path").fetchall()
    with Project.open(scanned["base"] / "scanned") as proj:
        want = proj.catalog.db.execute(
            f"SELECT {', '.join(cols)} FROM items ORDER BY path").fetchall()
    assert report.probed == len(want) and len(got) == len(want)
    assert got == want


def test_actor_plan_puts_a_network_on_gpus_with_encoded_jpegs_and_classic_on_cpu(tiny_embedders):
    """The dispatch, without a cluster: GPU actors for a neural network where the cluster has
    GPUs (fed encoded JPEGs), CPU actors otherwise, pool bounds from the cluster."""
    from curator.distributed import actor_plan
    from indexing.gpu_decode import EncodedJpegDecoder

    clip, classic = tiny_embedders
    gpu_cluster = {"gpus": 4, "cpus": 32}
    plan = actor_plan(clip, ("open_clip", {"device": "auto"}), RayOptions(), gpu_cluster)
    assert plan.gpus == 1 and plan.options["device"] == "cuda"
    assert (plan.min_actors, plan.max_actors) == (1, 4)
    assert isinstance(plan.decoder, EncodedJpegDecoder)
    half = actor_plan(clip, ("open_clip", {}), RayOptions(gpus_per_actor=0.5, min_actors=2),
                      gpu_cluster)
    assert (half.min_actors, half.max_actors) == (2, 8)
    cpu_only = actor_plan(clip, ("open_clip", {"device": "cuda:1"}), RayOptions(),
                          {"gpus": 0, "cpus": 8})
    assert cpu_only.gpus == 0 and cpu_only.options["device"] == "cpu"
    assert not isinstance(cpu_only.decoder, EncodedJpegDecoder) and cpu_only.max_actors == 4
    light = actor_plan(classic, ("classic", {}), RayOptions(max_actors=3), gpu_cluster)
    assert light.gpus == 0 and light.max_actors == 3  # classic never takes a GPU


@pytest.fixture(scope="module")
def tiny_embedders(tmp_path_factory):
    """A tiny random open_clip model (driver-side copy on cpu) and classic."""
    import json

    import open_clip
    import torch
    from safetensors.torch import save_file

    from indexing.embedders import create_embedder

    root = tmp_path_factory.mktemp("tiny_clip_ray")
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32,
                                           "head_width": 16, "patch_size": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                        "layers": 1}}
    (root / "RayTiny-ViT.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(root)
    torch.manual_seed(0)
    model = open_clip.create_model("RayTiny-ViT", pretrained=None)
    weights = str(root / "w.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    clip = create_embedder("open_clip", model="RayTiny-ViT", weights=weights,
                           device="cpu")
    return clip, create_embedder("classic")
