"""Oracle regressors that score designed sequences: a DeepSTARR-like and an MPRA-like CNN (torch only).

Trained per dataset on its train split (early stopping on valid), they report their own held-out Pearson
r per activity. Saved as ``{"state_dict", "style", "length", "n_activities", "test_pearson"}``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tf2lightning.core.atomic import atomic_path
from tf2lightning.core.hdf5_store import read_all, split_indices
from tf2lightning.core.tsv import write_tsv
from tf2lightning.families.d3.datasets import activity_of, dataset_kind
from tf2lightning.run import Run

log = logging.getLogger(__name__)

# style -> (conv channels, kernel sizes, pooling after each conv)
STYLES: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    "deepstarr": ((64, 64, 64), (9, 5, 3), (2, 2, 1)),  # DeepSTARR: conv-BN-ReLU-maxpool stacks
    "mpra": ((64, 64), (11, 5), (4, 1)),  # MPRA-like: a wide first filter, fewer layers
}

POOL_SCALE = 4.0  # summed features / 4: about the old mean * 16 at 249 bp after two 2x pools


class OracleCNN(nn.Module):
    """One-hot ``(B, 4, L)`` -> activities ``(B, n_act)``: conv stack, global average pool, dense head.

    Sum pooling keeps the motif *count* readable (a max pool would only see presence) at the same scale
    for every sequence length (a mean would shrink one motif's weight fourfold from 249 to 1024 bp).
    """

    def __init__(self, style: str, n_activities: int) -> None:
        super().__init__()
        channels, kernels, pools = STYLES[style]
        layers: list[nn.Module] = []
        previous = 4
        for out, kernel, pool in zip(channels, kernels, pools, strict=True):
            layers += [nn.Conv1d(previous, out, kernel, padding=kernel // 2), nn.BatchNorm1d(out), nn.ReLU()]
            if pool > 1:
                layers.append(nn.MaxPool1d(pool))
            previous = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(previous, 64), nn.ReLU(), nn.Linear(64, n_activities))

    def forward(self, onehot: Tensor) -> Tensor:
        return self.head(self.features(onehot).sum(-1) / POOL_SCALE)


def onehot(codes: np.ndarray | Tensor) -> Tensor:
    """uint8/long codes ``(B, L)`` -> float one-hot ``(B, 4, L)``."""
    return F.one_hot(torch.as_tensor(codes).long(), 4).float().transpose(1, 2)


@torch.no_grad()
def predict(oracle: nn.Module, codes: np.ndarray, batch_size: int = 256) -> np.ndarray:
    oracle.eval()
    out = [oracle(onehot(codes[i : i + batch_size])).numpy() for i in range(0, len(codes), batch_size)]
    return np.concatenate(out)


def pearson(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson r per column."""
    p, t = pred - pred.mean(0), true - true.mean(0)
    return (p * t).sum(0) / np.sqrt((p**2).sum(0) * (t**2).sum(0) + 1e-12)


def train_oracle(run: Run, inputs: Mapping[str, Path], outputs: Mapping[str, Path]) -> None:
    """Family stage: fit the oracle on ``inputs["data"]``; write ``outputs["model"]`` and ``["metrics"]``."""
    torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)
    kind = dataset_kind(run)
    cfg = run.dataset.get("oracle", {})
    data = read_all(inputs["data"], ("seq", "activity"))
    splits = split_indices(inputs["data"])
    x, y = data["seq"], activity_of(kind, data["activity"])
    model = OracleCNN(kind.oracle, len(kind.activities))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg.get("lr", 2e-3)))
    rng = np.random.default_rng(run.seed)
    batch_size = int(cfg.get("batch_size", 32))
    best, best_state = np.inf, None
    for epoch in range(int(cfg.get("epochs", 30))):
        model.train()
        order = rng.permutation(splits["train"])
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = np.sort(order[start : start + batch_size])
            loss = F.mse_loss(model(onehot(x[idx])), torch.from_numpy(y[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        valid = float(np.mean((predict(model, x[splits["valid"]]) - y[splits["valid"]]) ** 2))
        log.info("oracle epoch %d valid mse %.4f", epoch, valid)
        if valid < best:
            best, best_state = valid, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    test = splits["test"]
    r = pearson(predict(model, x[test]), y[test])
    payload = {
        "state_dict": model.state_dict(),
        "style": kind.oracle,
        "n_activities": len(kind.activities),
        "test_pearson": [float(v) for v in r],
    }
    with atomic_path(outputs["model"]) as tmp:
        torch.save(payload, tmp)
    rows = [
        {"metric": f"test_pearson_r_{a}", "value": float(v)} for a, v in zip(kind.activities, r, strict=True)
    ]
    rows.append({"metric": "valid_mse", "value": best})
    write_tsv(outputs["metrics"], rows, ("metric", "value"))


def load_oracle(path: Path) -> tuple[OracleCNN, list[float]]:
    """The trained oracle (eval mode) and its held-out Pearson r per activity."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = OracleCNN(payload["style"], int(payload["n_activities"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval(), list(payload["test_pearson"])
