"""The D3 score networks: a DiT-style transformer (``Tran``) and a dilated CNN (``Conv``), both conditioned
on the noise level and on the target activities.

``forward(indices (B, L) long, sigma (B,), labels (B, n_act)) -> log-scores (B, L, n_tokens)``. The noise
level and the activities are embedded and summed into one conditioning vector ``c`` that modulates every
block (adaLN: shift, scale and gate from ``c``). ``embed_kernel > 1`` adds a residual convolution over the
token embeddings (k-mer features before the first block; upstream D3 has none, ``embed_kernel=1``): at the
demo's size and step budget a 2-block ``Tran`` without it does not learn the motif grammar at all.
Outputs are scaled by sigma as SEDD does for the absorbing graph, and the entry of each position's current
token is set to zero (its log ratio to itself).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tf2lightning.errors import ConfigError
from tf2lightning.families.d3.datasets import dataset_kind
from tf2lightning.families.d3.diffusion import make_graph
from tf2lightning.run import Run


class TimestepEmbedding(nn.Module):
    """Sinusoidal features of ``sigma`` -> MLP -> ``(B, dim)``."""

    def __init__(self, dim: int, n_freq: int = 64) -> None:
        super().__init__()
        self.n_freq = n_freq
        self.mlp = nn.Sequential(nn.Linear(n_freq, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, sigma: Tensor) -> Tensor:
        half = self.n_freq // 2
        freqs = torch.exp(
            -math.log(10000.0) * torch.arange(half, dtype=sigma.dtype, device=sigma.device) / half
        )
        angles = sigma[:, None] * freqs[None]
        return self.mlp(torch.cat([angles.cos(), angles.sin()], -1))


def rotate_half(x: Tensor) -> Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], -1)


def rotary(x: Tensor) -> Tensor:
    """Rotary position embedding, rotate-half convention (GPT-NeoX), on ``(B, H, L, head_dim)``."""
    length, head_dim = x.shape[-2], x.shape[-1]
    positions = torch.arange(length, dtype=x.dtype, device=x.device)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, dtype=x.dtype, device=x.device) / head_dim))
    angles = positions[:, None] * inv_freq[None]
    angles = torch.cat([angles, angles], -1)
    return x * angles.cos() + rotate_half(x) * angles.sin()


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """Pre-norm transformer block with adaLN-Zero modulation and rotary self-attention."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(approximate="tanh"), nn.Linear(mlp_ratio * dim, dim)
        )
        self.dropout = nn.Dropout(dropout)
        self.adaLN = nn.Linear(dim, 6 * dim)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN(c).chunk(6, dim=-1)
        batch, length, dim = x.shape
        qkv = self.qkv(modulate(self.norm1(x), shift1, scale1))
        q, k, v = qkv.reshape(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(rotary(q), rotary(k), v)
        attended = attended.transpose(1, 2).reshape(batch, length, dim)
        x = x + gate1[:, None] * self.dropout(self.attn_out(attended))
        return x + gate2[:, None] * self.dropout(self.mlp(modulate(self.norm2(x), shift2, scale2)))


class ConvBlock(nn.Module):
    """Residual dilated convolution, adaLN-modulated: ``x + gate * GELU(conv(modulate(norm(x))))``."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.conv = nn.Conv1d(dim, dim, kernel_size, dilation=dilation, padding=dilation * (kernel_size // 2))
        self.dropout = nn.Dropout(dropout)
        self.adaLN = nn.Linear(dim, 3 * dim)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale, gate = self.adaLN(c).chunk(3, dim=-1)
        h = self.conv(modulate(self.norm(x), shift, scale).transpose(1, 2)).transpose(1, 2)
        return x + gate[:, None] * self.dropout(F.gelu(h))


class FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm, then a linear map to the token log-scores."""

    def __init__(self, dim: int, n_tokens: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.adaLN = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, n_tokens)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class ScoreNetwork(nn.Module):
    """The SEDD score model with a ``Tran`` or ``Conv`` backbone (``blocks``), conditioned on activities."""

    def __init__(
        self,
        *,
        backbone: str,
        n_tokens: int,
        n_activities: int,
        absorbing: bool,
        dim: int,
        n_blocks: int,
        heads: int = 4,
        kernel_size: int = 9,
        embed_kernel: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_tokens = n_tokens
        self.absorbing = absorbing
        self.embedding = nn.Embedding(n_tokens, dim)
        self.embedding_conv = (
            nn.Conv1d(dim, dim, embed_kernel, padding=embed_kernel // 2) if embed_kernel > 1 else None
        )
        self.sigma_embedding = TimestepEmbedding(dim)
        self.label_embedding = nn.Linear(n_activities, dim)
        if backbone == "Tran":
            blocks: list[nn.Module] = [DiTBlock(dim, heads, dropout=dropout) for _ in range(n_blocks)]
        elif backbone == "Conv":
            blocks = [ConvBlock(dim, kernel_size, 2 ** (i % 4), dropout) for i in range(n_blocks)]
        else:
            raise ConfigError(f"unknown backbone {backbone!r}; expected 'Tran' or 'Conv'")
        self.blocks = nn.ModuleList(blocks)
        self.final = FinalLayer(dim, n_tokens)
        self._zero_init()

    def _zero_init(self) -> None:
        """adaLN-Zero: every block starts as the identity and the output at zero."""
        for module in [*(b.adaLN for b in self.blocks), self.final.adaLN, self.final.linear]:
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, indices: Tensor, sigma: Tensor, labels: Tensor) -> Tensor:
        c = F.silu(self.sigma_embedding(sigma) + self.label_embedding(labels))
        x = self.embedding(indices)
        if self.embedding_conv is not None:  # k-mer features: x + conv(x)
            x = x + self.embedding_conv(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x, c)
        x = self.final(x, c)
        if self.absorbing:  # scale by sigma: log-scores of an unmasking start near log(1 / expm1(sigma))
            esigm1 = torch.where(sigma < 0.5, torch.expm1(sigma), sigma.exp() - 1)
            x = x - esigm1.log()[:, None, None] - math.log(self.n_tokens - 1)
        return torch.scatter(x, -1, indices[..., None], torch.zeros_like(x[..., :1]))


def build(run: Run) -> ScoreNetwork:
    """The score network of ``run.arch`` (``backbone``, ``dim``, ``n_blocks``...) for ``run``'s dataset."""
    arch = run.arch
    graph = make_graph(str(arch.get("graph", "absorbing")))
    return ScoreNetwork(
        backbone=str(arch.get("backbone") or run.arch_name),
        n_tokens=graph.n_tokens,
        n_activities=len(dataset_kind(run).activities),
        absorbing=graph.absorbing,
        dim=int(arch["dim"]),
        n_blocks=int(arch["n_blocks"]),
        heads=int(arch.get("heads", 4)),
        kernel_size=int(arch.get("kernel_size", 9)),
        embed_kernel=int(arch.get("embed_kernel", 1)),
        dropout=float(arch.get("dropout", 0.0)),
    )


def probe_inputs(run: Run, n: int, seed: int) -> dict[str, np.ndarray]:
    """Probe inputs: partly noised token ids, noise levels in (0, 6] and activities in [0, 3]."""
    rng = np.random.default_rng(seed)
    kind = dataset_kind(run)
    n_tokens = make_graph(str(run.arch.get("graph", "absorbing"))).n_tokens
    return {
        "indices": rng.integers(0, n_tokens, (n, kind.length)).astype(np.int64),
        "sigma": rng.uniform(0.01, 6.0, n).astype(np.float32),
        "labels": rng.uniform(0.0, 3.0, (n, len(kind.activities))).astype(np.float32),
    }


def example_inputs(run: Run) -> tuple[Tensor, ...]:
    """A small batch for tracing and export."""
    return tuple(torch.from_numpy(a) for a in probe_inputs(run, 2, run.seed).values())


def parity_inputs(arrays: dict[str, np.ndarray]) -> tuple[Tensor, ...]:
    return tuple(torch.from_numpy(arrays[k]) for k in ("indices", "sigma", "labels"))


def _identity(t: Tensor) -> Tensor:
    return t


def parity_layers(run: Run) -> dict[str, tuple[str, Callable[[Tensor], Tensor]]]:
    """Layer name in ``reference.h5`` -> (module path, layout): the same modules on both sides."""
    names = ["embedding", "sigma_embedding", "label_embedding"]
    names += ["embedding_conv"] if int(run.arch.get("embed_kernel", 1)) > 1 else []
    names += [f"blocks.{i}" for i in range(int(run.arch["n_blocks"]))] + ["final"]
    return {name: (name, _identity) for name in names}


PARITY_OUTPUTS: dict[str, Callable[[Tensor], Tensor]] = {"log_score": _identity}
