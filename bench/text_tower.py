"""What one text query costs in a real CLIP text tower on this CPU, full context against trimmed.

    python bench/text_tower.py [--model ViT-B-32] [--queries 30] [--threads 1]

The architecture is built by open_clip with *random* weights (no weights can be downloaded
here): the cost of a forward pass depends on the architecture, not on the values, so the times
are the real model's; the vectors mean nothing. Each query is a short phrase, tokenised as the
search path does, then encoded two ways on `--threads` torch threads (a search runs one query on
one thread): `model.encode_text` at the full context (77 tokens), and
`indexing.embedders.clip.encode_text_trimmed` (cut after the end-of-text token). Printed: the
median and fastest wall time and the CPU time per query of each, and the largest difference
between the two outputs (they must agree).
"""

from __future__ import annotations

import argparse
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

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = open_clip.create_model(args.model, pretrained=None).eval()
    tokenizer = open_clip.get_tokenizer(args.model)
    texts = [f"{PHRASES[i % len(PHRASES)]} number {i}" for i in range(args.queries)]
    results = {}
    worst = 0.0
    with torch.inference_mode():
        for name, fn in (("full context", model.encode_text), ("trimmed", None)):
            walls, cpus = [], []
            for text in texts:
                t, c = time.perf_counter(), time.process_time()
                tokens = tokenizer([text])
                out = fn(tokens) if fn else encode_text_trimmed(model, tokens)
                walls.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
                if fn is None:
                    worst = max(worst, float((out - model.encode_text(tokens)).abs().max()))
            results[name] = (walls, cpus)
    print(f"{args.model} text tower, random weights, {args.queries} one-phrase queries, "
          f"{args.threads} torch thread(s):\n")
    print("| encode | median wall | fastest wall | median CPU |")
    print("|---|---:|---:|---:|")
    for name, (walls, cpus) in results.items():
        print(f"| {name} | {1000 * statistics.median(walls):.1f} ms | {1000 * min(walls):.1f} ms"
              f" | {1000 * statistics.median(cpus):.1f} ms |")
    print(f"\nlargest difference between the two outputs: {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
