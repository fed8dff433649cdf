"""Training and data throughput of D3: the plain PyTorch loop vs Lightning, the upstream reader vs the HDF5
DataModule, and the converter's MB/s — the workflow's ``bench_training``/``bench_data`` outside Snakemake.

    .venv/bin/python benchmarks/d3_steps.py --dataset deepstarr --arch Tran --batch 32 --repeats 30

Makes a small synthetic dataset and a one-step legacy checkpoint in a scratch directory (the starting
weights do not change the speed), then runs :func:`tf2lightning.bench.suite.bench_training` and
:func:`~tf2lightning.bench.suite.bench_data` (plain loop and Lightning in one child process, same model,
batch and threads; medians of ``--repeats`` steps after ``--warmup``) and prints their rows.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tf2lightning.bench.suite import Settings, bench_data, bench_training, markdown_table
from tf2lightning.families.d3 import data, legacy
from tf2lightning.families.d3.datasets import KINDS
from tf2lightning.run import Run
from tf2lightning.stages.weights import convert_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="deepstarr", choices=sorted(KINDS))
    parser.add_argument("--arch", default="Tran", choices=("Tran", "Conv"))
    parser.add_argument("--dim", type=int, default=64, help="hidden_size, cond_dim and the Conv width")
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu"))
    args = parser.parse_args()
    run = Run(
        "d3",
        args.dataset,
        args.arch,
        dataset={"n_train": 4 * args.batch, "n_valid": args.batch, "n_test": args.batch},
        arch={
            "hidden_size": args.dim,
            "cond_dim": args.dim,
            "conv_width": args.dim,
            "n_blocks": args.blocks,
            "dropout": 0.0,
            "legacy_steps": 1,
        },
        train={"lr": 1e-3, "warmup": 10, "ema_decay": 0.99, "gradient_clip": 1.0, "batch_size": args.batch},
        threads=args.threads,
    )
    settings = Settings(args.batch, args.threads, args.warmup, args.repeats, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        legacy.write_data(run, root / "legacy_data")
        data.convert(run, root / "legacy_data", root / "data.h5")
        legacy.train_model(run, root / "legacy_data", root / "legacy_model")
        convert_weights(run, root / "legacy_model", "pth", root / "pth.safetensors")
        paths = {
            "model_dir": root / "legacy_model",
            "h5": root / "data.h5",
            "weights": root / "pth.safetensors",
        }
        rows = bench_training(run, paths, root / "training.tsv", settings)
        rows += bench_data(
            run, {"legacy_dir": root / "legacy_data", "h5": root / "data.h5"}, root / "data.tsv", settings
        )
    print(f"{run.name}: dim {args.dim}, {args.blocks} blocks, batch {args.batch}, {args.threads} thread(s)")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
