"""Training throughput of the tabular family, the plain PyTorch loop vs Lightning over whole runs — the
workflow's ``bench_training`` outside Snakemake.

    .venv/bin/python benchmarks/tabular_loop_speed.py --dataset digits --arch MLP --epochs 10

Writes the dataset, converts it, fits the teacher and a one-epoch legacy model in a scratch directory, then
runs :func:`tf2lightning.bench.suite.bench_training`: both loops train the same model on the same data with
the same recipe, early stopping off, in one child process; samples/s = train rows x epochs / seconds of
the whole ``fit`` call (validation and checkpointing included: what a user waits for), medians of whole
runs after a warm-up run. That the two loops agree is ``tests/test_tabular_loops.py``'s job.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tf2lightning.bench.suite import Settings, bench_training, markdown_table
from tf2lightning.config import validate_families
from tf2lightning.families.tabular import data, legacy, teacher
from tf2lightning.run import Run
from tf2lightning.stages.weights import convert_weights

ARCHS = {
    "MLP": {"kind": "mlp", "hidden": [64, 32], "activation": "geglu", "dropout": 0.1, "legacy_epochs": 1},
    "Transformer": {
        "kind": "transformer",
        "d_model": 16,
        "heads": 2,
        "layers": 1,
        "dropout": 0.1,
        "legacy_epochs": 1,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="digits", choices=["breast_cancer", "wine", "digits", "iris"])
    parser.add_argument("--arch", default="MLP", choices=list(ARCHS))
    parser.add_argument("--epochs", type=int, default=10, help="at most tabular.bench.EPOCHS")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    train = {"max_epochs": args.epochs, "batch_size": args.batch_size}
    section = {"datasets": {args.dataset: {"teacher_max_iter": 20}}, "archs": ARCHS, "train": train}
    config = {"seed": 0, "threads": args.threads, "families": {"tabular": section}}
    validate_families(config)
    run = Run.from_config(config, "tabular", args.dataset, args.arch)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "legacy_data").mkdir()
        legacy.write_data(run, root / "legacy_data")
        data.convert(run, root / "legacy_data", root / "data.h5")
        teacher.fit_teacher(run, {"data": root / "data.h5"}, {"probs": root / "probs.h5"})
        legacy.train_model(run, root / "legacy_data", root / "legacy_model")
        convert_weights(run, root / "legacy_model", "pt", root / "pt.safetensors")
        paths = {
            "model_dir": root / "legacy_model",
            "h5": root / "data.h5",
            "weights": root / "pt.safetensors",
            "teacher": root / "probs.h5",
        }
        rows = bench_training(run, paths, root / "training.tsv", Settings.for_run(run, repeats=args.repeats))
    print(f"{run.name}: batch {args.batch_size}, {args.threads} thread(s)")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
