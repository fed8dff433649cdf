"""The oracles that score designed sequences: upstream's networks (``oracle_nets``), trained here or loaded.

``dataset.oracle.checkpoint`` names an upstream oracle checkpoint (``oracle_DeepSTARR_DeepSTARR_data.ckpt``,
``oracle_mpra_mpra_data.ckpt``: Lightning checkpoints whose ``state_dict`` keys carry ``model.``); it is
loaded strictly with its widths read from the tensors. Without one, the dataset's upstream architecture is
trained on its train split (early stopping on valid) at ``oracle.widths``/``oracle.hidden``; for promoter,
whose upstream oracle (Sei) is not shipped, that is a DeepSTARR network standing in for it. Either way the
oracle reports its held-out Pearson r per predicted activity. Saved as ``{"state_dict", "spec",
"columns", "test_pearson", "source"}``.
"""

from __future__ import annotations

import dataclasses
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
from tf2lightning.errors import FormatError
from tf2lightning.families.d3 import oracle_nets
from tf2lightning.families.d3.datasets import activity_of, dataset_kind
from tf2lightning.run import Run

log = logging.getLogger(__name__)

UPSTREAM_WIDTHS = {"deepstarr": ((256, 60, 60, 120), (256,)), "mpra": ((196, 256, 256), (512, 256))}


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


def read_upstream_oracle(path: Path) -> nn.Module:
    """An upstream oracle checkpoint (``state_dict`` with ``model.`` keys), loaded strictly, eval mode."""
    from tf2lightning.families.d3.runfolder import numpy_globals

    try:
        with torch.serialization.safe_globals(numpy_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()}
        return oracle_nets.from_state(state)
    except Exception as error:  # torch raises several types for a bad file
        raise FormatError(f"{path}: not an upstream oracle checkpoint ({error})") from None


def fit(
    model: nn.Module, x: np.ndarray, y: np.ndarray, splits: Mapping[str, np.ndarray], cfg: Mapping, seed: int
) -> float:
    """Adam on MSE over the train split, keeping the weights of the best valid MSE; returns that MSE.
    ``shift_augment`` rolls each batch by a random offset (ours: the synthetic activities ignore position)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg.get("lr", 2e-3)))
    rng = np.random.default_rng(seed)
    batch_size = int(cfg.get("batch_size", 32))
    shifts = bool(cfg.get("shift_augment", False))
    best, best_state = np.inf, None
    for epoch in range(int(cfg.get("epochs", 30))):
        model.train()
        order = rng.permutation(splits["train"])
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = np.sort(order[start : start + batch_size])
            batch = np.roll(x[idx], int(rng.integers(x.shape[1])), axis=1) if shifts else x[idx]
            loss = F.mse_loss(model(onehot(batch)), torch.from_numpy(y[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        valid = float(np.mean((predict(model, x[splits["valid"]]) - y[splits["valid"]]) ** 2))
        log.info("oracle epoch %d valid mse %.4f", epoch, valid)
        if valid < best:
            best, best_state = valid, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return best


def train_oracle(run: Run, inputs: Mapping[str, Path], outputs: Mapping[str, Path]) -> None:
    """Family stage: load or fit the oracle; write ``outputs["model"]`` and ``outputs["metrics"]``."""
    torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)
    kind = dataset_kind(run)
    cfg = run.dataset.get("oracle", {})
    data = read_all(inputs["data"], ("seq", "activity"))
    splits = split_indices(inputs["data"])
    columns = list(kind.oracle_columns)
    x, y = data["seq"], np.ascontiguousarray(activity_of(kind, data["activity"])[:, columns])
    given = cfg.get("checkpoint")
    if given:
        model, best, source = read_upstream_oracle(Path(given)), float("nan"), str(given)
    else:
        widths, hidden = UPSTREAM_WIDTHS[kind.oracle]
        spec = oracle_nets.spec_for(
            kind.oracle,
            len(columns),
            kind.length,
            tuple(cfg.get("widths") or widths),
            tuple(cfg.get("hidden") or hidden),
        )
        model = spec.build()
        best = fit(model, x, y, splits, cfg, run.seed)
        stand_in = ", a stand-in for Sei" if kind.layout == "promoter" else ""
        source = f"trained here (upstream's {kind.oracle} architecture{stand_in})"
    held_out = splits["test"] if len(splits.get("test", [])) else splits["valid"]
    r = pearson(predict(model, x[held_out]), y[held_out])
    payload = {
        "state_dict": model.state_dict(),
        "spec": dataclasses.asdict(oracle_nets.spec_of(model.state_dict())),
        "columns": columns,
        "test_pearson": [float(v) for v in r],
        "source": source,
    }
    with atomic_path(outputs["model"]) as tmp:
        torch.save(payload, tmp)
    names = [kind.activities[c] for c in columns]
    rows = [{"metric": f"test_pearson_r_{a}", "value": float(v)} for a, v in zip(names, r, strict=True)]
    rows.append({"metric": "valid_mse", "value": best})
    write_tsv(outputs["metrics"], rows, ("metric", "value"))


def load_oracle(path: Path) -> tuple[nn.Module, list[float], list[int]]:
    """The oracle (eval mode), its held-out Pearson r per output and the activity columns it predicts."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    spec = oracle_nets.OracleSpec(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in payload["spec"].items()}
    )
    model = spec.build()
    model.load_state_dict(payload["state_dict"])
    return model.eval(), list(payload["test_pearson"]), list(payload["columns"])
