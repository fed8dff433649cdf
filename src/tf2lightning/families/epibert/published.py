"""The published EpiBERT sizes as one configuration (no framework): 524,288 bp input, ATAC at 4 bp bins
(131,072 bins), 4,096 output tokens of 128 bp, 693 motifs, 8 transformer layers of width 1,024.

Used by the full-size parity and throughput scripts (``benchmarks/epibert_*.py``); the demo runs the same
code at the sizes of ``config/config.yaml``.
"""

from __future__ import annotations

from typing import Any

from tf2lightning.families.epibert.modes import FINETUNE, PRETRAIN
from tf2lightning.run import Run

DATASET: dict[str, Any] = {
    "input_length": 524288,
    "output_res": 128,
    "atac_bin": 4,
    "max_shift": 10,
    "crop": 2,
    "mask_size": 1536,
    "atac_mask_dropout": 0.15,
    "n_motifs": 693,
}
ARCH: dict[str, Any] = {
    "filter_list_seq": [512, 640, 640, 768, 896, 1024],
    "filter_list_atac": [32, 64],
    "atac_stem_filters": 32,
    "atac_pool": 4,
    "num_heads": 8,
    "attention": "performer",
    "seed": 19,
    "num_layers": 8,
    "motif_units_fc": 32,
    "final_point_scale": 6,
    "dropout": 0.2,
    "pointwise_dropout": 0.1,
    "motif_dropout": 0.25,
    "bn_momentum": 0.9,
    "ffn_activation": "relu",
    "mode": PRETRAIN,
    "atac_scale": 0.1,
}


def published_run(mode: str = PRETRAIN, train: dict[str, Any] | None = None, seed: int = 0) -> Run:
    """The published configuration as a Run (``mode``: ``pretrain`` or ``finetune``)."""
    if mode not in (PRETRAIN, FINETUNE):
        raise ValueError(f"mode must be {PRETRAIN!r} or {FINETUNE!r}, not {mode!r}")
    return Run(
        family="epibert",
        dataset_name="K562",
        arch_name=f"published_{mode}",
        dataset=dict(DATASET),
        arch={**ARCH, "mode": mode},
        train=dict(train or {}),
        seed=seed,
    )
