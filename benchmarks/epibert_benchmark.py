"""EpiBERT training throughput: the Lightning training step (examples/s, output tokens/s, model FLOPs
utilisation) and, at the demo size, TF vs. the Lightning port at the same size and batch, with ratios.

    # demo size (config/config.yaml), TF vs Lightning, data loading too:
    python benchmarks/epibert_benchmark.py --config config/config.yaml \
        --legacy-data results/epibert/K562/legacy_data --h5 results/epibert/K562/data.h5
    # published size on a GPU, bf16 (the Lightning side only):
    python benchmarks/epibert_benchmark.py --size full --device cuda --precision bf16-mixed --batch 1

Measures (each framework in its own child process, never both in one):
* training examples/s (batch / median step time, robust to a busy machine): the source's ``tf.function``
  train step on the Keras model (with ``--legacy-data``) vs. the Lightning training step (``Trainer.fit``:
  forward, loss, backward, clipping, AdamW) on one fixed batch, after warm-up
  (``tf2lightning.families.epibert.throughput``);
* output tokens/s, model FLOPs per step, achieved TFLOP/s and MFU (on a GPU with a known peak) of the
  Lightning step;
* data examples/s (with ``--legacy-data`` and ``--h5``): ``tf.data`` over the ZLIB TFRecords (parse +
  augmentation) vs. the HDF5 DataLoader (per-example reads + the same augmentation, ``--workers``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import yaml

TF_CODE = """
import json, sys, time
import tensorflow as tf, keras
from pathlib import Path
from tf2lightning.run import Run
from tf2lightning.families.epibert import legacy, tfdata
from tf2lightning.families.epibert.geometry import geometry
from tf2lightning.families.epibert.modes import is_finetune
run, args = Run(**json.loads(sys.argv[1])), json.loads(sys.argv[2])
tf.config.threading.set_intra_op_parallelism_threads(args["threads"])
tf.config.threading.set_inter_op_parallelism_threads(1)
geo, rate, bs = geometry(run), float(run.dataset["atac_mask_dropout"]), args["batch"]
finetune = is_finetune(run.arch)
ds = tfdata.make_dataset(Path(args["legacy_data"]), "train", run.dataset_name, geo, rate, bs, 0, rna=finetune)
it = iter(ds.repeat())
next(it)
start, n = time.perf_counter(), 0
while n < args["data_examples"]:
    next(it); n += bs
data_rate = n / (time.perf_counter() - start)
model = legacy.build_keras_model(run)
scale = float(run.arch.get("atac_scale", 0.1)) if finetune else None
step = legacy.make_train_step(model, keras.optimizers.Adam(1e-3, clipnorm=1.0), 0.15, scale)
inputs, targets = next(it)
for _ in range(args["warmup"]):
    step(inputs, *targets)
seconds = []
for _ in range(args["steps"]):
    start = time.perf_counter()
    float(step(inputs, *targets))
    seconds.append(time.perf_counter() - start)
print(json.dumps({"train": bs / sorted(seconds)[len(seconds) // 2], "data": data_rate}))
"""

TORCH_CODE = """
import json, sys
import torch
from pathlib import Path
from tf2lightning.run import Run
from tf2lightning.families.epibert.throughput import loading_throughput, training_throughput
run, args = Run(**json.loads(sys.argv[1])), json.loads(sys.argv[2])
torch.set_num_threads(args["threads"])
out = training_throughput(
    run, args["batch"], args["device"], args["precision"], args["steps"], args["warmup"]
)
if args["h5"]:
    out["data"] = loading_throughput(
        run, Path(args["h5"]), args["batch"], args["workers"], args["data_examples"]
    )
print(json.dumps(out))
"""


def child(code: str, run: dict, args: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(run), json.dumps(args)], capture_output=True, text=True
    )
    if proc.returncode:
        raise SystemExit(f"child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def demo_run(config_path: str, dataset: str, arch: str) -> dict:
    """The run of ``dataset`` x ``arch`` in a (validated) workflow config."""
    from tf2lightning.config import validate_families

    with open(config_path) as handle:
        config = yaml.safe_load(handle)
    validate_families(config)
    section = config["families"]["epibert"]
    return {
        "family": "epibert",
        "dataset_name": dataset,
        "arch_name": arch,
        "dataset": section["datasets"][dataset],
        "arch": section["archs"][arch],
        "train": section.get("train", {}),
        "parity": section.get("parity", {}),
        "seed": int(config.get("seed", 0)),
    }


def fmt(value: float | None, spec: str = ".4g") -> str:
    return "n/a" if value is None else format(value, spec)


def report(args: argparse.Namespace, torch_side: dict, tf_side: dict | None) -> None:
    print(f"{'measure':<32}{'TF':>12}{'Lightning':>12}{'ratio':>8}")
    rows = [("train", "train examples/s")] + ([("data", "data examples/s")] if "data" in torch_side else [])
    for key, label in rows:
        tf_value = tf_side[key] if tf_side else None
        ratio = torch_side["examples_per_s" if key == "train" else key] / tf_value if tf_value else None
        ours = torch_side["examples_per_s" if key == "train" else key]
        print(f"{label:<32}{fmt(tf_value, '.2f'):>12}{ours:>12.2f}{fmt(ratio, '.2f'):>8}")
    lightning = [
        ("output tokens/s", fmt(torch_side["tokens_per_s"], ".4g")),
        ("step time, median (s)", fmt(torch_side["step_s_median"], ".4g")),
        ("model FLOPs per step", fmt(torch_side["flops_per_step"], ".4g")),
        ("achieved TFLOP/s", fmt(torch_side["achieved_tflops"], ".4g")),
        ("peak TFLOP/s", fmt(torch_side["peak_tflops"], ".4g")),
        ("MFU", fmt(torch_side["mfu"], ".2%")),
        ("peak GPU memory (GiB)", fmt(torch_side["peak_memory_gib"], ".3g")),
    ]
    for label, value in lightning:
        print(f"{label:<32}{'':>12}{value:>12}")
    device, steps = f"{torch_side['device']} ({torch_side['precision']})", torch_side["steps"]
    print(
        f"size {args.size}, arch {args.arch}, Lightning on {device}, batch {args.batch}, "
        f"{steps} timed steps after {args.warmup}, {args.threads} thread(s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["demo", "full"], default="demo", help="full: the published sizes")
    parser.add_argument("--config", default="config/config.yaml", help="demo size: the workflow config")
    parser.add_argument("--dataset", default="K562")
    parser.add_argument("--arch", default="pretrain", help="demo: an arch of the config; full: its mode")
    parser.add_argument("--legacy-data", default=None, help="TFRecords: time the TF side too")
    parser.add_argument("--h5", default=None, help="data.h5: time the HDF5 DataLoader too")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", default=None, help="Lightning precision; default bf16-mixed on CUDA")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--data-examples", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per side")
    args = parser.parse_args()

    if args.size == "full":
        from tf2lightning.families.epibert.published import published_run
        from tf2lightning.run import run_to_dict

        run = run_to_dict(published_run(args.arch))
    else:
        run = demo_run(args.config, args.dataset, args.arch)
    shared = vars(args)
    tf_side = child(TF_CODE, run, shared) if args.legacy_data else None
    report(args, child(TORCH_CODE, run, shared), tf_side)


if __name__ == "__main__":
    main()
