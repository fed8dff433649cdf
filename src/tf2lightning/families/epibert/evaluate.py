"""EpiBERT evaluation on the held-out test split -> the rows of ``eval.tsv``.

Every test example is augmented with its fixed draws (as in validation). Pretraining: masked-ATAC Pearson
r and Spearman rho pooled over the masked bins of all examples, and the loss. Fine-tuning: the same for the
predicted expression profile over all bins of all examples, against a baseline that predicts expression
from the observed ATAC signal of the same bin (``baseline_*``: what accessibility alone explains), and the
ATAC head's masked-ATAC Pearson r (``atac_pearson_r``). ``*_log`` correlate ``log1p`` values.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torchmetrics.functional import pearson_corrcoef, spearman_corrcoef

from tf2lightning.core.hdf5_store import split_indices
from tf2lightning.families.epibert.augment import one_hot
from tf2lightning.families.epibert.datamodule import AugmentedExamples
from tf2lightning.families.epibert.geometry import geometry, mask_rate
from tf2lightning.families.epibert.loss import poisson_multinomial
from tf2lightning.families.epibert.model import EpiBERT, tracks
from tf2lightning.families.epibert.modes import is_finetune
from tf2lightning.run import Run


def _correlations(pred: Tensor, target: Tensor, prefix: str = "") -> dict[str, float]:
    return {
        f"{prefix}pearson_r": float(pearson_corrcoef(pred, target)),
        f"{prefix}spearman_r": float(spearman_corrcoef(pred, target)),
        f"{prefix}pearson_r_log": float(pearson_corrcoef(torch.log1p(pred), torch.log1p(target))),
    }


def predict_test(run: Run, model: EpiBERT, h5: Path) -> dict[str, Tensor]:
    """The model's outputs and the targets of every test example: ``pred`` (N, bins[, 2]), ``target``,
    ``mask`` (and ``rna`` for fine-tuning)."""
    finetune = is_finetune(run.arch)
    rate = mask_rate(run)
    test = AugmentedExamples(h5, split_indices(h5)["test"], geometry(run), rate, run.seed, finetune)
    keys = ("target", "mask", "rna") if finetune else ("target", "mask")
    out: dict[str, list[Tensor]] = {k: [] for k in ("pred", *keys)}
    model.eval()
    with torch.no_grad():
        for batch in DataLoader(test, batch_size=int(run.train.get("batch_size", 16))):
            out["pred"].append(tracks(model(one_hot(batch["sequence"]), batch["atac"], batch["motif"])))
            for key in keys:
                out[key].append(batch[key])
    return {k: torch.cat(v) for k, v in out.items()}


def evaluate(run: Run, model: EpiBERT, h5: Path) -> dict[str, float]:
    out = predict_test(run, model, h5)
    total_weight = float(run.train.get("total_weight", 0.15))
    where = out["mask"] > 0
    if not is_finetune(run.arch):
        pred, target = out["pred"][where], out["target"][where]
        return {
            "n_test": float(len(out["pred"])),
            "n_masked_bins": float(len(target)),
            **_correlations(pred, target),
            "poisson_multinomial": float(poisson_multinomial(target, pred, total_weight)),
        }
    rna_pred, rna = out["pred"][..., 1], out["rna"]
    return {
        "n_test": float(len(rna)),
        "n_bins": float(rna.numel()),
        **_correlations(rna_pred.flatten(), rna.flatten()),
        **_correlations(out["target"].flatten(), rna.flatten(), "baseline_"),
        "poisson_multinomial": float(poisson_multinomial(rna, rna_pred, total_weight)),
        "atac_pearson_r": float(pearson_corrcoef(out["pred"][..., 0][where], out["target"][where])),
    }
