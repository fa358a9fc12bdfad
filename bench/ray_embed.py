"""Ray's cost on one machine: items/s of `classic` and ViT-B-32 (random weights) on a local
two-node Ray cluster (127.0.0.1) against the same run without Ray, and the overhead per item.

    python bench/ray_embed.py --items 300               # figures for docs/benchmarks.md
    python bench/ray_embed.py --items 60 --no-clip      # quick

Both runs embed the same scanned sample corpus (curator.sample_corpus), each into a fresh copy
of the project; startup (cluster start, model load, actor start) is counted in the Ray run as a
user would see it, and reported apart.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def start_cluster(temp: Path, head_cpus: int, worker_cpus: int) -> tuple[str, list]:
    """A head and a worker node on 127.0.0.1, each `ray start --block` in its own process group."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                          if p))
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray_bin = str(Path(sys.executable).with_name("ray"))
    common = ["--node-ip-address=127.0.0.1", "--object-store-memory=200000000",
              "--disable-usage-stats", "--block"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
             "start_new_session": True, "env": env}
    procs = [subprocess.Popen([ray_bin, "start", "--head", f"--port={port}",
                               f"--num-cpus={head_cpus}", "--include-dashboard=false",
                               f"--temp-dir={temp}", *common], **quiet)]
    deadline = time.monotonic() + 120
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        if time.monotonic() > deadline:
            raise TimeoutError("the Ray head did not start")
        time.sleep(0.3)
    address = f"127.0.0.1:{port}"
    procs.append(subprocess.Popen([ray_bin, "start", f"--address={address}",
                                   f"--num-cpus={worker_cpus}", *common], **quiet))
    import ray

    ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    while sum(1 for n in ray.nodes() if n["Alive"]) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("the Ray worker node did not join")
        time.sleep(0.3)
    ray.shutdown()
    return address, procs


def stop_cluster(procs: list) -> None:
    for proc in reversed(procs):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(10)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def run(project: Path, model: str, weights: str | None, ray_options) -> tuple[float, int]:
    from curator.project import Project

    start = time.perf_counter()
    with Project.open(project) as proj:
        # Audio always classic: the comparison is about the image model and Ray's overhead.
        report = proj.embed(model, "classic", weights=weights, device="cpu", batch_size=16,
                            ray=ray_options)
    seconds = time.perf_counter() - start
    embedded = sum(s["embedded"] for s in report.spaces.values())
    return seconds, embedded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--no-clip", action="store_true", help="only classic")
    parser.add_argument("--head-cpus", type=int, default=2)
    parser.add_argument("--worker-cpus", type=int, default=1)
    args = parser.parse_args(argv)

    from curator.distributed import RayOptions
    from curator.project import Project
    from curator.sample_corpus import write_sample_corpus

    work = Path(tempfile.mkdtemp(prefix="curator-ray-bench-"))
    temp = Path(f"/tmp/cur-raybench-{os.getpid()}")
    procs: list = []
    try:
        write_sample_corpus(work / "corpus", items=args.items, seed=0)
        with Project.create(work / "scanned", [work / "corpus"]) as proj:
            proj.scan()
        models = [("classic", None)]
        if not args.no_clip:
            sys.path.insert(0, str(ROOT / "bench"))
            from gpu_bench import random_clip_weights

            models.append(("ViT-B-32", str(random_clip_weights(work))))
        t0 = time.perf_counter()
        address, procs = start_cluster(temp, args.head_cpus, args.worker_cpus)
        cluster_s = time.perf_counter() - t0
        print(f"two-node cluster on 127.0.0.1 ({args.head_cpus}+{args.worker_cpus} CPUs) "
              f"started in {cluster_s:.1f} s; {os.cpu_count()} cores on this machine")
        print(f"{'model':<10}{'items':>7}{'local s':>9}{'local/s':>9}{'ray s':>8}{'ray/s':>8}"
              f"{'overhead ms/item':>18}")
        for model, weights in models:
            for name in ("local", "ray"):
                shutil.rmtree(work / name, ignore_errors=True)
                shutil.copytree(work / "scanned", work / name)
            local_s, n = run(work / "local", model, weights, None)
            ray_s, n_ray = run(work / "ray", model, weights,
                               RayOptions(address=address, decode_items=16))
            assert n == n_ray, (n, n_ray)
            overhead = (ray_s - local_s) / n * 1000 if n else 0.0
            print(f"{model:<10}{n:>7}{local_s:>9.1f}{n / local_s:>9.1f}{ray_s:>8.1f}"
                  f"{n / ray_s:>8.1f}{overhead:>18.1f}")
    finally:
        stop_cluster(procs)
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
