"""``sentscale`` command line: provision models, list the registry, evaluate an encoder.

The full study is a Snakemake workflow (``snakemake --cores 2``); this CLI is for single
encoders and for the steps a user runs by hand (provisioning on a login node).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import __version__
from .errors import SentscaleError
from .runtime import peak_rss_mb


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models-dir", default="resources/models", help="provisioned models")


def cmd_list_models(args: argparse.Namespace) -> int:
    from .models import Registry

    registry = Registry.load()
    for name in registry.names():
        spec = registry[name]
        print(f"{name:24s} {spec.kind:22s} {spec.family:10s} {spec.params / 1e9:8.3f}B")
    return 0


def cmd_list_tasks(args: argparse.Namespace) -> int:
    from . import data

    for task in data.ALL_TASKS:
        print(task)
    return 0


def cmd_provision(args: argparse.Namespace) -> int:
    from . import provision
    from .models import Registry

    registry = Registry.load()
    for name in args.models:
        path = provision.provision(
            registry[name], args.models_dir, force=args.force, verify=args.verify
        )
        print(f"{name}: {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate one encoder on a list of tasks; one JSON per (encoder, task) in --out."""
    from . import data, embed, evaluation, prompts
    from .models import Registry

    tasks = args.tasks or list(data.STS_TASKS + data.TRANSFER_TASKS)
    data.check_data_dir(args.data_dir, tasks)  # fail before the model is loaded
    demos = ()
    if args.demo_sentence is not None or args.demo_word is not None:
        if args.demo_sentence is None or args.demo_word is None:
            raise SentscaleError("--demo-sentence and --demo-word go together")
        demos = (prompts.Demo(args.demo_sentence, args.demo_word),)
    encoder = embed.load_encoder(
        Registry.load()[args.encoder],
        models_dir=args.models_dir,
        prompt=args.prompt,
        demos=demos,
        dtype=args.dtype,
        batch_size=args.batch_size,
        device=args.device,
    )
    start = time.perf_counter()
    results = evaluation.evaluate(
        encoder.encode, tasks, args.data_dir, transfer_mode=args.transfer_mode
    )
    wall = time.perf_counter() - start
    name = args.name or (args.encoder if args.prompt is None else f"{args.encoder}--{args.prompt}")
    n_encoded = sum(r["n_sentences_encoded"] for r in results.values())
    encode_s = sum(r["timings"]["encode_s"] for r in results.values())
    cost = {
        "wall_s": round(wall, 1),
        "sentences_encoded": n_encoded,
        "encode_s": round(encode_s, 1),
        "sentences_per_s": round(n_encoded / encode_s, 1) if encode_s else None,
        # ru_maxrss is in KiB on Linux: the process's peak, model and data included
        "peak_rss_mb": round(peak_rss_mb()),
    }
    meta = {
        "encoder": args.encoder,
        "prompt": args.prompt,
        "demos": [list(d) for d in demos],
        "dtype": args.dtype,
        **cost,
    }
    evaluation.write_results(results, args.out, name, meta)
    summary = {task: round(r["score"], 2) for task, r in results.items()}
    print(json.dumps({"encoder": name, **cost, "scores": summary}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentscale", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sentscale {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list-models", help="the model registry")
    p.set_defaults(func=cmd_list_models)
    p = sub.add_parser("list-tasks", help="SentEval task names")
    p.set_defaults(func=cmd_list_tasks)

    p = sub.add_parser("provision", help="fetch and convert models for offline use")
    p.add_argument("models", nargs="+")
    p.add_argument("--force", action="store_true", help="redo even if already provisioned")
    p.add_argument(
        "--verify", action="store_true", help="check every file's sha256, not only its size"
    )
    _add_common(p)
    p.set_defaults(func=cmd_provision)

    p = sub.add_parser("evaluate", help="evaluate one encoder on SentEval tasks")
    p.add_argument("--encoder", required=True, help="registry name (sentscale list-models)")
    p.add_argument("--prompt", default=None, help="prompt variant (causal LMs; default eol)")
    p.add_argument("--demo-sentence", default=None)
    p.add_argument("--demo-word", default=None)
    p.add_argument("--tasks", nargs="*", default=None, help="default: the 14 paper tasks")
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data/senteval"))
    p.add_argument("--out", type=Path, default=Path("results/evaluate"))
    p.add_argument("--name", default=None, help="encoder name in result files")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--transfer-mode", default="fast", choices=["fast", "paper"])
    _add_common(p)
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SentscaleError as err:
        print(f"sentscale: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
