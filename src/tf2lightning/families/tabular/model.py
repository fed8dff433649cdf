"""The tabular classifiers (torch): an MLP with an optional GEGLU activation and a feature-tokenizer
Transformer (FT-Transformer style: one learned embedding per feature plus a CLS token, pre-norm blocks).

Both are ``backbone`` (an ``nn.Sequential``) then ``head`` (a ``Linear`` to class logits), so the parity
table below fits either. Exportable with TorchScript and ONNX (no Python control flow on tensor values).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tf2lightning.families.tabular.datasets import table_shape
from tf2lightning.run import Run


class GEGLU(nn.Module):
    """``a * gelu(b)`` of the two halves of the last axis: width ``2h -> h``."""

    def forward(self, x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=-1)
        return a * F.gelu(b)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "geglu": GEGLU,
}


def gated(activation: str) -> int:
    """How many linear outputs one hidden unit takes: 2 for GEGLU, else 1."""
    return 2 if activation == "geglu" else 1


class MLPBlock(nn.Sequential):
    """Linear -> activation -> dropout."""

    def __init__(self, n_in: int, n_out: int, activation: str, dropout: float) -> None:
        super().__init__(
            nn.Linear(n_in, n_out * gated(activation)), ACTIVATIONS[activation](), nn.Dropout(dropout)
        )


class MLPClassifier(nn.Module):
    """Standardized features ``(N, F)`` -> class logits ``(N, K)``."""

    def __init__(
        self, n_features: int, n_classes: int, hidden: Sequence[int], activation: str, dropout: float
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
        self.n_classes = n_classes
        sizes = [n_features, *hidden]
        self.backbone = nn.Sequential(
            *(MLPBlock(a, b, activation, dropout) for a, b in itertools.pairwise(sizes))
        )
        self.head = nn.Linear(sizes[-1], n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


class FeatureTokenizer(nn.Module):
    """``(N, F) -> (N, 1 + F, d)``: token ``j`` is ``x_j * W_j + b_j``; a learned CLS token comes first."""

    def __init__(self, n_features: int, d_model: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d_model)
        self.weight = nn.Parameter(torch.empty(n_features, d_model).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, d_model).uniform_(-bound, bound))
        self.cls = nn.Parameter(torch.empty(d_model).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        tokens = x.unsqueeze(-1) * self.weight + self.bias
        return torch.cat([self.cls.expand(x.shape[0], 1, -1), tokens], dim=1)


class SelfAttention(nn.Module):
    """Multi-head self-attention ``(N, T, d) -> (N, T, d)`` with one fused q/k/v projection."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by heads {heads}")
        self.heads = heads
        self.scale = 1 / math.sqrt(d_model // heads)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        # (N, T, 3d) -> 3 x (N, heads, T, d / heads); no shape is read, so traces keep a dynamic batch.
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-2, -1) * self.scale).softmax(-1)
        return self.out((self.dropout(weights) @ v).transpose(1, 2).flatten(2))


class TransformerBlock(nn.Module):
    """Pre-norm residual block: ``x + attn(LN(x))`` then ``x + FFN(LN(x))`` with a GEGLU feed-forward."""

    def __init__(self, d_model: int, heads: int, ffn_hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = SelfAttention(d_model, heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, 2 * ffn_hidden), GEGLU(), nn.Dropout(dropout), nn.Linear(ffn_hidden, d_model)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.dropout(self.attention(self.norm1(x)))
        return x + self.dropout(self.ffn(self.norm2(x)))


class ClsPool(nn.Module):
    """The CLS token ``(N, T, d) -> (N, d)``, normalized and rectified (the FT-Transformer head input)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(x[:, 0]))


class TransformerClassifier(nn.Module):
    """Standardized features ``(N, F)`` -> class logits ``(N, K)``."""

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        d_model: int,
        heads: int,
        layers: int,
        ffn_mult: float,
        dropout: float,
    ) -> None:
        super().__init__()
        self.n_classes = n_classes
        ffn_hidden = max(1, round(d_model * ffn_mult))
        self.backbone = nn.Sequential(
            FeatureTokenizer(n_features, d_model),
            *(TransformerBlock(d_model, heads, ffn_hidden, dropout) for _ in range(layers)),
            ClsPool(d_model),
        )
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


def build(run: Run) -> MLPClassifier | TransformerClassifier:
    """The classifier of ``run.arch["kind"]`` sized for the run's dataset."""
    n_features, n_classes = table_shape(run)
    arch = run.arch
    if arch["kind"] == "mlp":
        hidden = [int(h) for h in arch["hidden"]]
        return MLPClassifier(n_features, n_classes, hidden, arch["activation"], float(arch["dropout"]))
    return TransformerClassifier(
        n_features,
        n_classes,
        d_model=int(arch["d_model"]),
        heads=int(arch["heads"]),
        layers=int(arch["layers"]),
        ffn_mult=float(arch["ffn_mult"]),
        dropout=float(arch["dropout"]),
    )


def example_inputs(run: Run) -> tuple[Tensor, ...]:
    """A small standardized batch ``(2, F)`` for tracing and export."""
    generator = torch.Generator().manual_seed(run.seed)
    return (torch.randn(2, table_shape(run)[0], generator=generator),)


def _identity(t: Tensor) -> Tensor:
    return t


def _softmax(logits: Tensor) -> Tensor:
    return logits.softmax(-1)


# Legacy layer name -> (torch module path, layout): the first stage, the whole backbone, the logits, the
# probabilities. The reference values come from ``numpy_reference`` (the same math, written separately).
PARITY_LAYERS: dict[str, tuple[str, Callable[[Tensor], Tensor]]] = {
    "backbone.0": ("backbone.0", _identity),
    "backbone": ("backbone", _identity),
    "head": ("head", _identity),
    "probs": ("head", _softmax),
}

PARITY_OUTPUTS: dict[str, Callable[[Tensor], Tensor]] = {"probs": _softmax}
