#!/usr/bin/env python
"""Gradient caching vs one plain full-batch pass, side by side on a real model.

Run from the repository root (after ``bash scripts/install.sh``)::

    .venv/bin/python benchmarks/gradcache_parity.py                      # smollm2-135m, 20 steps
    .venv/bin/python benchmarks/gradcache_parity.py --steps 40 --micro 4 --dropout 0.05

Two fine-tunes of the same LoRA recipe (plain LoRA, float32, CPU or GPU) from the same seed on
the same NLI triplets: batch ``--batch`` embedded in one forward pass with its graph ("plain":
micro_batch_size = batch_size) and in micro-batches of ``--micro`` with gradient caching
("cached"). Both optimise the same full-batch InfoNCE loss, so with LoRA dropout 0 (the
default here) the loss curves and STS-B dev scores agree to float rounding; with dropout the
two draw different masks (one mask tensor vs several), so they only agree statistically.
Prints per step the two losses and their difference, STS-B dev before/after for both, the
largest difference, seconds per step and the peak memory of each (the reason to cache).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def train(name, triplets, data_dir, models_dir, recipe_block, label):
    import torch

    from sentscale import finetune
    from sentscale.models import Registry

    recipe = finetune.resolve_recipe(recipe_block, name)
    model, tokenizer = finetune.load_base(
        Registry.load()[name], models_dir=models_dir, recipe=recipe, device="auto"
    )
    trainer = finetune.Trainer(model, tokenizer, recipe, eval_batch_size=64, name=name)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    out = Path(f"/tmp/gradcache-parity-{label}")
    started = time.perf_counter()
    result = trainer.train(triplets, data_dir=data_dir, out_adapter=out / "adapter")
    result["wall_s"] = time.perf_counter() - started
    if torch.cuda.is_available():
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--micro", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eval-steps", type=int, default=10)
    parser.add_argument("--dev-items", type=int, default=300)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared/data/senteval"))
    parser.add_argument(
        "--triplets", default=str(REPO.parent / "shared/data/nli/snli_devtest_triplets.csv")
    )
    parser.add_argument("--models-dir", default=str(REPO / "resources/models"))
    args = parser.parse_args()

    import torch

    from sentscale import finetune
    from sentscale.models import Registry
    from sentscale.provision import provision

    torch.set_num_threads(args.threads)
    provision(Registry.load()[args.model], args.models_dir)
    triplets = finetune.load_triplets(args.triplets)
    base = {
        "quantization": None,
        "mixed_precision": None,
        "dtype": "float32",
        "batch_size": args.batch,
        "max_steps": args.steps,
        "warmup_steps": max(1, args.steps // 10),
        "eval_steps": args.eval_steps,
        "dev_max_items": args.dev_items,
        "lora_dropout": args.dropout,
    }
    runs = {}
    for label, micro in (("plain", args.batch), ("cached", args.micro)):
        runs[label] = train(
            args.model,
            triplets,
            args.data_dir,
            args.models_dir,
            {**base, "micro_batch_size": micro},
            label,
        )
    plain, cached = runs["plain"], runs["cached"]
    print(
        f"{args.model}: batch {args.batch} (plain: 1 pass; cached: micro-batches of "
        f"{args.micro}), lora_dropout {args.dropout}, {args.steps} steps, "
        f"{len(triplets)} triplets, torch {torch.__version__}, threads {args.threads}"
    )
    print(f"{'step':>5} {'loss plain':>12} {'loss cached':>12} {'diff':>10}")
    worst = 0.0
    for a, b in zip(plain["loss"], cached["loss"], strict=True):
        diff = b["loss"] - a["loss"]
        worst = max(worst, abs(diff))
        print(f"{a['step']:>5} {a['loss']:>12.6f} {b['loss']:>12.6f} {diff:>10.2e}")
    print(f"largest loss difference: {worst:.2e}")
    print(f"{'':>5} {'dev plain':>12} {'dev cached':>12}")
    print(f"{'before':>6} {plain['dev_before']:>11.4f} {cached['dev_before']:>12.4f}")
    for a, b in zip(plain["dev"], cached["dev"], strict=True):
        print(f"{a['step']:>6} {a['dev_spearman']:>11.4f} {b['dev_spearman']:>12.4f}")
    for label, run in runs.items():
        peak = f", peak GPU {run['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in run else ""
        print(
            f"{label}: {run['wall_s'] / args.steps:.2f} s/step (dev passes included), best "
            f"step {run['best_step']} dev {run['best_dev_spearman']:.4f}{peak}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
