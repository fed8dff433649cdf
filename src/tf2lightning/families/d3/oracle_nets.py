"""Upstream's oracle networks (``train_n_sample/PL_DeepSTARR.py``, ``PL_mpra.py`` at 7d5b2c4), ours.

Same parameter and buffer names as upstream's ``self.model`` (its Lightning checkpoints prefix them with
``model.``), so an upstream oracle checkpoint loads strictly; widths (upstream: DeepSTARR 256/60/60/120, fully
connected 256; MPRA 196/256/256, fully connected 512/256) are read from the tensors, or chosen for an oracle
trained here. Input one-hot ``(B, 4, L)``; output ``(B, n_out)`` (DeepSTARR: dev, hk; MPRA: one activity).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

MPRA_DILATIONS = ((1, 2, 4, 8), (1, 2, 4), (1,))
MPRA_KERNELS = (15, 5, 3)
MPRA_POOLS = (4, 4, 2)


def _same(x: Tensor, weight: Tensor, dilation: int = 1, bias: Tensor | None = None) -> Tensor:
    return torch.conv1d(x, weight, bias, padding=dilation * (weight.shape[-1] // 2), dilation=dilation)


class DeepSTARR(nn.Module):
    """Four conv-BN-ReLU-maxpool(2) layers (kernels 7, 3, 5, 3; no conv bias), two BN dense layers, output."""

    def __init__(self, n_out: int, widths: tuple[int, int, int, int], flat: int, hidden: int = 256) -> None:
        super().__init__()
        d1, d2, d3, d4 = widths
        for i, (out, inp, k) in enumerate(((d1, 4, 7), (d2, d1, 3), (d3, d2, 5), (d4, d3, 3)), start=1):
            setattr(self, f"conv{i}_filters", nn.Parameter(nn.init.kaiming_normal_(torch.zeros(out, inp, k))))
            setattr(self, f"batchnorm{i}", nn.BatchNorm1d(out))
        self.fc5 = nn.Linear(flat, hidden)
        self.batchnorm5 = nn.BatchNorm1d(hidden)
        self.fc6 = nn.Linear(hidden, hidden)
        self.batchnorm6 = nn.BatchNorm1d(hidden)
        self.fc7 = nn.Linear(hidden, n_out)
        self.dropout = nn.Dropout(0.4)

    def forward(self, x: Tensor) -> Tensor:
        for i in range(1, 5):
            x = getattr(self, f"batchnorm{i}")(_same(x, getattr(self, f"conv{i}_filters")))
            x = nn.functional.max_pool1d(torch.relu(x), 2)
        x = self.dropout(torch.relu(self.batchnorm5(self.fc5(x.flatten(1)))))
        x = self.dropout(torch.relu(self.batchnorm6(self.fc6(x))))
        return self.fc7(x)


class DilatedResidual(nn.Module):
    """``relu(x + block(x))``: conv-BN, then per dilation ReLU-dropout-dilated conv (no bias)-BN."""

    def __init__(self, width: int, dilations: tuple[int, ...], dropout: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(width, width, 3, padding=1), nn.BatchNorm1d(width)]
        for d in dilations:
            conv = nn.Conv1d(width, width, 3, padding=d, dilation=d, bias=False)
            layers += [nn.ReLU(), nn.Dropout(dropout), conv, nn.BatchNorm1d(width)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.block(x) + x)


class MPRA(nn.Module):
    """Three conv stages (kernels 15, 5, 3), each with a dilated residual block and max-pooling, two BN dense
    layers, output."""

    def __init__(self, n_out: int, widths: tuple[int, int, int], flat: int, hidden: tuple[int, int]) -> None:
        super().__init__()
        previous = 4
        for i, (width, k, dilations, pool) in enumerate(
            zip(widths, MPRA_KERNELS, MPRA_DILATIONS, MPRA_POOLS, strict=True), start=1
        ):
            act = nn.ELU() if i == 1 else nn.ReLU()
            conv = nn.Conv1d(previous, width, k, padding=k // 2)
            setattr(self, f"conv{i}", nn.Sequential(conv, nn.BatchNorm1d(width), act, nn.Dropout(0.1)))
            setattr(
                self,
                f"res{i}",
                nn.Sequential(DilatedResidual(width, dilations), nn.MaxPool1d(pool), nn.Dropout(0.2)),
            )
            previous = width
        self.fc4 = nn.Linear(flat, hidden[0])
        self.batchnorm4 = nn.BatchNorm1d(hidden[0])
        self.fc5 = nn.Linear(hidden[0], hidden[1])
        self.batchnorm5 = nn.BatchNorm1d(hidden[1])
        self.fc6 = nn.Linear(hidden[1], n_out)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: Tensor) -> Tensor:
        for i in range(1, 4):
            x = getattr(self, f"res{i}")(getattr(self, f"conv{i}")(x))
        x = self.dropout(torch.relu(self.batchnorm4(self.fc4(x.flatten(1)))))
        x = self.dropout(torch.relu(self.batchnorm5(self.fc5(x))))
        return self.fc6(x)


@dataclass(frozen=True)
class OracleSpec:
    """What sizes an oracle: its style (``deepstarr`` or ``mpra``), widths, flattened and hidden sizes."""

    style: str
    n_out: int
    widths: tuple[int, ...]
    flat: int
    hidden: tuple[int, ...]

    def build(self) -> nn.Module:
        if self.style == "deepstarr":
            return DeepSTARR(self.n_out, self.widths, self.flat, self.hidden[0])  # type: ignore[arg-type]
        return MPRA(self.n_out, self.widths, self.flat, self.hidden)  # type: ignore[arg-type]


def pooled_length(style: str, length: int) -> int:
    pools = (2, 2, 2, 2) if style == "deepstarr" else MPRA_POOLS
    for pool in pools:
        length //= pool
    return length


def spec_for(
    style: str, n_out: int, length: int, widths: tuple[int, ...], hidden: tuple[int, ...]
) -> OracleSpec:
    """The spec of an oracle trained here, at ``widths`` for ``length``-bp inputs."""
    return OracleSpec(style, n_out, tuple(widths), widths[-1] * pooled_length(style, length), tuple(hidden))


def spec_of(state: Mapping[str, Tensor]) -> OracleSpec:
    """The spec of a state dict (``model.`` prefix removed), from its tensor shapes."""
    if "conv1_filters" in state:
        widths = tuple(int(state[f"conv{i}_filters"].shape[0]) for i in range(1, 5))
        fc5 = state["fc5.weight"].shape
        return OracleSpec("deepstarr", int(state["fc7.weight"].shape[0]), widths, int(fc5[1]), (int(fc5[0]),))
    widths = tuple(int(state[f"conv{i}.0.weight"].shape[0]) for i in range(1, 4))
    fc4, fc5 = state["fc4.weight"].shape, state["fc5.weight"].shape
    return OracleSpec(
        "mpra", int(state["fc6.weight"].shape[0]), widths, int(fc4[1]), (int(fc4[0]), int(fc5[0]))
    )


def from_state(state: Mapping[str, Tensor]) -> nn.Module:
    """The oracle of a state dict, loaded strictly, in eval mode."""
    model = spec_of(state).build()
    model.load_state_dict(dict(state), strict=True)
    return model.eval()
