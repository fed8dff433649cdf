"""EpiBERT Lightning training throughput at any size: examples/s, output tokens/s, model FLOPs per step,
achieved TFLOP/s and model FLOPs utilisation (MFU) on a GPU.

    # the demo's architecture (config/config.yaml), on whatever device there is:
    python benchmarks/epibert_benchmark.py --arch pretrain
    # published size on a GPU, bf16:
    python benchmarks/epibert_benchmark.py --size full --device cuda --precision bf16-mixed --batch 1

The step is the real one (``Trainer.fit``: forward, loss, backward, clipping, AdamW on one fixed batch,
``tf2lightning.families.epibert.throughput``); rates use the median step after ``--warmup``. The
comparison with TensorFlow (the source's ``tf.function`` step, and tf.data vs the HDF5 DataModule) is the
workflow's benchmark rules: ``snakemake results/epibert/K562_pretrain/bench/training.tsv
results/epibert/K562/bench/data.tsv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from tf2lightning.config import validate_config
from tf2lightning.families.epibert.throughput import training_throughput
from tf2lightning.run import Run

ROOT = Path(__file__).resolve().parents[1]


def demo_run(config_path: Path, dataset: str, arch: str) -> Run:
    """The run of ``dataset`` x ``arch`` in a (validated) workflow config."""
    config = yaml.safe_load(config_path.read_text())
    validate_config(config)
    return Run.from_config(config, "epibert", dataset, arch)


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["demo", "full"], default="demo", help="full: the published sizes")
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--dataset", default="K562")
    parser.add_argument("--arch", default="pretrain", help="demo: an arch of the config; full: its mode")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", default=None, help="Lightning precision; default bf16-mixed on CUDA")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if args.size == "full":
        from tf2lightning.families.epibert.published import published_run

        run = published_run(args.arch)
    else:
        run = demo_run(args.config, args.dataset, args.arch)
    out = training_throughput(run, args.batch, args.device, args.precision, args.steps, args.warmup)
    rows = [
        ("examples/s", fmt(out["examples_per_s"], ",.2f")),
        ("output tokens/s", fmt(out["tokens_per_s"], ",.0f")),
        ("step time, median (s)", fmt(out["step_s_median"], ".4g")),
        ("model FLOPs per step", fmt(out["flops_per_step"], ".4g")),
        ("achieved TFLOP/s", fmt(out["achieved_tflops"], ".4g")),
        ("peak TFLOP/s", fmt(out["peak_tflops"], ".4g")),
        ("MFU", fmt(out["mfu"], ".2%")),
        ("peak GPU memory (GiB)", fmt(out["peak_memory_gib"], ".3g")),
    ]
    for label, value in rows:
        print(f"{label:<24}{value:>14}")
    print(
        f"size {args.size}, arch {args.arch}, {out['device']} ({out['precision']}), batch {args.batch}, "
        f"{out['steps']} timed steps after {args.warmup}, {args.threads} thread(s)"
    )


if __name__ == "__main__":
    main()
