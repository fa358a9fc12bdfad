"""What one text query costs in a real CLIP text tower on this CPU, full context against trimmed.

    python bench/text_tower.py [--model ViT-B-32] [--queries 30] [--threads 1]

The architecture is built by open_clip with *random* weights (no weights can be downloaded
here): the cost of a forward pass depends on the architecture, not on the values, so the times
are the real model's; the vectors mean nothing. Each query is a short phrase, tokenised as the
search path does, then encoded two ways on `--threads` torch threads (a search runs one query on
one thread): `model.encode_text` at the full context (77 tokens),
`indexing.embedders.clip.encode_text_trimmed` (cut after the end-of-text token), and
`indexing.embedders.clip_text.PackedTextTower` (cut, and its weights packed for oneDNN: what the
search path runs on a float32 CPU model). The three run in turn query by query, so they see the
same load. Printed: the median and fastest wall time and the CPU time per query of each, and the
largest difference of each output from the full-context one (they must agree).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHRASES = ["a dog", "a red car", "two people on a beach", "a bowl of soup", "a cat asleep",
           "a photo of a mountain lake at dawn", "an old man reading a newspaper in a cafe"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import open_clip
    import torch

    from indexing.embedders.clip import encode_text_trimmed
    from indexing.embedders.clip_text import PackedTextTower

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = open_clip.create_model(args.model, pretrained=None).eval()
    tokenizer = open_clip.get_tokenizer(args.model)
    texts = [f"{PHRASES[i % len(PHRASES)]} number {i}" for i in range(args.queries)]
    packed = PackedTextTower.build(model)
    if packed is None:
        raise SystemExit(f"{args.model}: no packed text tower here (torch without oneDNN?)")
    encoders = {"full context": model.encode_text,
                "cut after the end-of-text token": lambda t: encode_text_trimmed(model, t),
                "cut, weights packed (now)": packed}
    results = {name: ([], []) for name in encoders}
    worst = dict.fromkeys(encoders, 0.0)
    with torch.inference_mode():
        for text in texts:
            for name, fn in encoders.items():
                t, c = time.perf_counter(), time.process_time()
                tokens = tokenizer([text])
                out = fn(tokens)
                results[name][0].append(time.perf_counter() - t)
                results[name][1].append(time.process_time() - c)
                diff = float((out - model.encode_text(tokens)).abs().max())
                worst[name] = max(worst[name], diff)
    print(f"{args.model} text tower, random weights, {args.queries} one-phrase queries, "
          f"{args.threads} torch thread(s):\n")
    print("| encode | median wall | fastest wall | median CPU | largest difference |")
    print("|---|---:|---:|---:|---:|")
    for name, (walls, cpus) in results.items():
        print(f"| {name} | {1000 * statistics.median(walls):.1f} ms | {1000 * min(walls):.1f} ms"
              f" | {1000 * statistics.median(cpus):.1f} ms | {worst[name]:.1e} |")
    print(f"\n1-minute load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
