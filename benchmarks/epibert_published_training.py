"""EpiBERT training step at the published architecture on CPU, batch 1: the source's ``tf.function`` step
(Performer) vs the port's plain loop and Lightning, both starting from the same weights.

    python benchmarks/epibert_published_training.py --input-length 131072 \\
        --out results/epibert/published/bench/training_131072bp.tsv [--warmup 1] [--repeats 3] [--threads 1]
        [--sides torch]

Every size but the input length is the published one (``published.py``: 8 layers of width 1,024,
8 heads, Performer, 693 motifs, the conv towers' filters). ``--input-length`` shrinks the window, and so
the token count, where the published 524,288 bp do not fit the machine's time or memory; 32,768 and
131,072 bp keep the 1,536 bp masks whole (other lengths are a ConfigError). A TF child
builds the Keras model (seed 0) and saves ``model.h5``; a torch child converts it with the family's weight
map; both then time the workflow's training benchmark (:func:`tf2lightning.bench.suite.bench_training`'s
sides) on one synthetic example with the same draws, and the TSV has the suite's columns (medians, IQR).
The EpiBERT report pages show the tables written under ``results/epibert/published/bench/`` as rows and a
panel of their own (``families/epibert/bench.py``'s ``extra_tables``); the default demo never runs this.
``--sides torch`` (or ``tf``) times one side alone, each side being its own process anyway (the TF child
still writes the weights).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from tf2lightning.bench.protocol import run_side
from tf2lightning.bench.suite import COLUMNS, Settings, request, result_rows
from tf2lightning.config import validate_config
from tf2lightning.core.tsv import write_tsv
from tf2lightning.families.epibert.bench import synthetic_train_batch
from tf2lightning.families.epibert.geometry import geometry
from tf2lightning.families.epibert.published import published_run
from tf2lightning.run import Run, run_to_dict

ROOT = Path(__file__).resolve().parents[1]

TF_CODE = """
import json, sys
from pathlib import Path
import keras
from tf2lightning.run import Run
from tf2lightning.families.epibert import legacy
from tf2lightning.tfside.saving import save_keras_h5
run, root = Run(**json.loads(sys.argv[1])), Path(sys.argv[2])
keras.utils.set_random_seed(0)
save_keras_h5(legacy.build_keras_model(run), root / "model.h5")
"""

TORCH_CODE = """
import json, sys
from pathlib import Path
from tf2lightning.run import Run
from tf2lightning.core.keras_h5 import read_keras_h5
from tf2lightning.core.torch_weights import save_safetensors, target_spec
from tf2lightning.families.epibert import model, weights
run, root = Run(**json.loads(sys.argv[1])), Path(sys.argv[2])
port = model.build(run)
save_safetensors(weights.weight_map(run).apply(read_keras_h5(root / "model.h5"), target_spec(port)),
                 root / "weights.safetensors")
"""


def published_training_run(input_length: int, config_path: Path = ROOT / "config" / "config.yaml") -> Run:
    """The published pretraining architecture at ``input_length`` bp, with the demo's pretraining recipe
    (``config.yaml``'s ``train`` section and ``legacy_*`` keys of ``epibert/pretrain``) at batch size 1."""
    config = yaml.safe_load(config_path.read_text())
    validate_config(config)
    demo = Run.from_config(config, "epibert", "K562", "pretrain")
    run = published_run(train={**demo.train, "batch_size": 1})
    run.arch.update({k: v for k, v in demo.arch.items() if k.startswith("legacy_")})  # the TF step's Adam
    run.dataset["input_length"] = input_length
    geometry(run)  # a length whose cropped tokens are not whole masks (e.g. 16,384 bp) is a ConfigError
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the TSV (the suite's columns)")
    parser.add_argument("--input-length", type=int, default=524288)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--sides", nargs="+", choices=("tf", "torch"), default=["tf", "torch"], help="each its own process"
    )
    args = parser.parse_args()

    run = published_training_run(args.input_length)
    settings = Settings(
        batch_size=1, threads=args.threads, warmup=args.warmup, repeats=args.repeats, device="cpu"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out.parent, prefix=".published.") as tmp:
        work, run_json = Path(tmp), json.dumps(run_to_dict(run))
        for code in (TF_CODE, TORCH_CODE):
            subprocess.run([sys.executable, "-c", code, run_json, str(work)], check=True)
        np.savez(work / "batch.npz", **synthetic_train_batch(run, 1))
        paths = {"model_dir": work, "weights": work / "weights.safetensors", "batch": work / "batch.npz"}
        paths = {**paths, "scratch": work}
        results = [run_side(request(run, side, "training", settings, paths), work) for side in args.sides]
    rows = result_rows(run, results, settings, baseline="keras train step")
    for row in rows:  # its own panel and rows in the EpiBERT report pages (bench.extra_tables)
        row["dataset"] = f"published_{args.input_length}bp"
        row["task"] = f"training, published sizes at {args.input_length} bp"
    write_tsv(args.out, rows, COLUMNS)
    for row in rows:
        print(row["side"], row["variant"], row["median_s"], row["iqr_s"], row["ratio"], row["status"])


if __name__ == "__main__":
    main()
