"""The two EpiBERT training modes of an architecture (no framework).

* ``pretrain``: masked-ATAC pretraining, one output track (the ATAC profile head).
* ``finetune``: the source's ``epibert_rampage_finetune`` with ``predict_atac=True``: the same trunk and
  ATAC head plus an expression (RAMPAGE/CAGE-like) head; the model outputs both tracks stacked as
  ``(N, bins, 2)`` = (masked-ATAC rate, expression rate). With ``init_from: <arch>`` its training starts
  from that architecture's trained model (``train/model.pt``): trunk and ATAC head loaded, expression
  head fresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tf2lightning.run import Run

PRETRAIN, FINETUNE = "pretrain", "finetune"
HEAD_PREFIX = "rna_head"  # torch modules and Keras layers of the expression head start with it
PRETRAINED_MODEL = "results/{family}/{dataset}_%s/train/model.pt"


def is_finetune(arch: Mapping[str, Any]) -> bool:
    return arch.get("mode", PRETRAIN) == FINETUNE


def pretrained_input(run: Run) -> dict[str, str]:
    """The ``train`` rule's extra input of a fine-tuning run with ``init_from``: the trained model of that
    architecture on the same dataset (a pattern in the rule's wildcards); nothing for other runs."""
    source = run.arch.get("init_from")
    return {"pretrained": PRETRAINED_MODEL % source} if is_finetune(run.arch) and source else {}
