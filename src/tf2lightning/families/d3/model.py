"""The D3 score network: upstream's SEDD module (``train_n_sample/model/transformer*.py`` at 7d5b2c4), ours.

Upstream keeps one module per dataset, holding *both* backbones (the DDiT transformer and the dilated
CNN); its forward runs one of them (the other is commented out), yet every checkpoint stores all of it.
:class:`SEDD` has the same parameters, names, shapes and registration order, so an upstream ``model``
state dict loads strictly and the EMA ``shadow_params`` list (trainable parameters in
``named_parameters()`` order) lines up. The per-dataset differences are fields of :class:`Shape`:

=========  ===================  ==============  ================  ==============================
dataset    ``signal_embedding``  ``label_emb``   ``label_embed``   Fourier ``embed``
=========  ===================  ==============  ================  ==============================
deepstarr  Linear(2, H)          Linear(2, L)    5 rows            Tran only
mpra       Linear(3, H)          Linear(2 or 3)  4 rows            no
promoter   Linear(1, H) per bp   none            5 rows            no
=========  ===================  ==============  ================  ==============================

``forward(indices (B, L) long, labels, sigma (B,)) -> log-scores (B, L, n_tokens)`` in upstream's argument
order; ``labels`` is ``(B, n)`` activities, or the ``(B, L, 1)`` signal track for promoter.
``Tran``: token embedding + activity embedding, ``c = silu(TimestepEmbedder(sigma))``, DDiT blocks (adaLN,
rotary, bias-free LayerNorm with a weight), final adaLN layer, the current token's entry set to 0.
``Conv``: one-hot + a label channel, 20 GroupNorm/swish residual blocks (kernel 9, dilations 1,1,4,16,64),
two 1x1 convolutions, no scatter. Ours, not upstream's: ``kmer_kernel > 1`` adds ``ours_kmer_conv``, a
residual convolution over the Tran token embeddings (off by default), and the absorbing graph's extra
mask token (upstream only uses the uniform graph).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tf2lightning.errors import ConfigError
from tf2lightning.families.d3.datasets import dataset_kind
from tf2lightning.run import Run

N_FREQUENCIES = 256
CONV_DILATIONS = (1, 1, 4, 16, 64) * 4
CONV_KERNEL = 9
LABEL_CLASSES = {"deepstarr": 4, "mpra": 3, "promoter": 4}


@dataclass(frozen=True)
class Shape:
    """Everything that sizes one SEDD module (upstream's ``config.model`` plus what its code hard-codes)."""

    backbone: str
    n_tokens: int
    length: int
    hidden_size: int
    cond_dim: int
    n_blocks: int
    n_heads: int
    n_signal: int
    per_position: bool
    label_classes: int
    label_emb_in: int | None
    fourier: bool
    conv_width: int
    conv_embed_dim: int
    dropout: float = 0.1
    absorbing: bool = False
    kmer_kernel: int = 1


class LayerNorm(nn.Module):
    """LayerNorm in fp32 without a bias, with a learnable weight."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.float(), [x.shape[-1]]) * self.weight


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale) + shift


def swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


class TimestepEmbedder(nn.Module):
    """``sigma`` -> 256 sinusoidal features (cos, then sin; max period 1e4) -> MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(N_FREQUENCIES, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, sigma: Tensor) -> Tensor:
        half = N_FREQUENCIES // 2
        exponents = torch.arange(half, dtype=torch.float32, device=sigma.device) / half
        angles = sigma[:, None].float() * torch.exp(-math.log(10000.0) * exponents)[None]
        return self.mlp(torch.cat([angles.cos(), angles.sin()], -1))


class LabelEmbedder(nn.Module):
    """Upstream's class-label table (stored in checkpoints; its forward is never called)."""

    def __init__(self, n_classes: int, dim: int) -> None:
        super().__init__()
        self.embedding_table = nn.Embedding(n_classes + 1, dim)


class Rotary(nn.Module):
    """Rotary position angles from the ``inv_freq`` buffer (saved in upstream's checkpoints)."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim)))

    def forward(self, length: int) -> tuple[Tensor, Tensor]:
        positions = torch.arange(length, device=self.inv_freq.device).type_as(self.inv_freq)
        angles = positions[:, None] * self.inv_freq[None]
        angles = torch.cat([angles, angles], -1)
        return angles.cos(), angles.sin()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate-half rotary on ``(B, heads, L, head_dim)``."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], -1) * sin


class DDiTBlock(nn.Module):
    """adaLN-modulated pre-norm block: rotary self-attention, then a GELU-tanh MLP, gated residuals."""

    def __init__(self, dim: int, heads: int, cond_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = LayerNorm(dim)
        self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.dropout1 = nn.Dropout(dropout)
        self.norm2 = LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim)
        )
        self.dropout2 = nn.Dropout(dropout)
        self.adaLN_modulation = nn.Linear(cond_dim, 6 * dim)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, c: Tensor) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c)[:, None].chunk(6, dim=2)
        batch, length, dim = x.shape
        qkv = self.attn_qkv(modulate(self.norm1(x), shift1, scale1))
        q, k, v = qkv.reshape(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(rotate(q, cos, sin), rotate(k, cos, sin), v)
        attended = attended.transpose(1, 2).reshape(batch, length, dim)
        x = x + gate1 * self.dropout1(self.attn_out(attended))
        return x + gate2 * self.dropout2(self.mlp(modulate(self.norm2(x), shift2, scale2)))


class EmbeddingLayer(nn.Module):
    """Token embedding plus the activity embedding (per sequence, or per position for a signal track)."""

    def __init__(self, dim: int, n_tokens: int, n_signal: int, per_position: bool) -> None:
        super().__init__()
        self.per_position = per_position
        self.embedding = nn.Parameter(torch.empty(n_tokens, dim))
        self.signal_embedding = nn.Linear(n_signal, dim)
        nn.init.kaiming_uniform_(self.embedding, a=math.sqrt(5))

    def forward(self, indices: Tensor, labels: Tensor) -> Tensor:
        signal = self.signal_embedding(labels.float())
        return self.embedding[indices] + (signal if self.per_position else signal[:, None, :])


class FinalLayer(nn.Module):
    def __init__(self, dim: int, n_out: int, cond_dim: int) -> None:
        super().__init__()
        self.norm_final = LayerNorm(dim)
        self.linear = nn.Linear(dim, n_out)
        self.adaLN_modulation = nn.Linear(cond_dim, 2 * dim)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c)[:, None].chunk(2, dim=2)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class FourierFeatures(nn.Module):
    """Upstream's frozen Gaussian Fourier projection (stored in deepstarr checkpoints, never used)."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(embed_dim // 2) * 30.0, requires_grad=False)


class Dense(nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.dense(x)


class SEDD(nn.Module):
    """Upstream's SEDD module for one dataset, running the ``shape.backbone`` half of it."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        if shape.backbone not in ("Tran", "Conv"):
            raise ConfigError(f"unknown backbone {shape.backbone!r}; expected 'Tran' or 'Conv'")
        self.shape = shape
        dim, cond, n, embed = shape.hidden_size, shape.cond_dim, shape.conv_width, shape.conv_embed_dim
        self.vocab_embed = EmbeddingLayer(dim, shape.n_tokens, shape.n_signal, shape.per_position)
        self.sigma_map = TimestepEmbedder(cond)
        self.label_embed = LabelEmbedder(shape.label_classes, cond)
        self.rotary_emb = Rotary(dim // shape.n_heads)
        self.blocks = nn.ModuleList(
            DDiTBlock(dim, shape.n_heads, cond, shape.dropout) for _ in range(shape.n_blocks)
        )
        self.output_layer = FinalLayer(dim, shape.n_tokens, cond)
        if shape.fourier:
            self.embed = nn.Sequential(FourierFeatures(embed), nn.Linear(embed, embed))
        self.linear = nn.Conv1d(shape.n_tokens + 1, n, CONV_KERNEL, padding=CONV_KERNEL // 2)
        self.conv_blocks = nn.ModuleList(
            nn.Conv1d(n, n, CONV_KERNEL, dilation=d, padding=d * (CONV_KERNEL // 2)) for d in CONV_DILATIONS
        )
        self.denses = nn.ModuleList(Dense(embed, n) for _ in CONV_DILATIONS)
        self.norms = nn.ModuleList(nn.GroupNorm(1, n) for _ in CONV_DILATIONS)
        self.scale = nn.Parameter(torch.ones(1))
        self.final = nn.Sequential(nn.Conv1d(n, n, 1), nn.GELU(), nn.Conv1d(n, shape.n_tokens, 1))
        if shape.label_emb_in is not None:
            self.label_emb = nn.Sequential(
                nn.Linear(shape.label_emb_in, shape.length), nn.SiLU(), nn.Linear(shape.length, shape.length)
            )
        if shape.kmer_kernel > 1:  # ours, registered last so upstream's parameter order is kept
            k = shape.kmer_kernel
            self.ours_kmer_conv = nn.Conv1d(dim, dim, k, padding=k // 2)
        self._zero_init()

    def _zero_init(self) -> None:
        """Upstream's adaLN-Zero start: zero modulations and a zero output layer."""
        layers = [*(b.adaLN_modulation for b in self.blocks), self.output_layer.adaLN_modulation]
        for layer in [*layers, self.output_layer.linear]:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, indices: Tensor, labels: Tensor, sigma: Tensor) -> Tensor:
        c = F.silu(self.sigma_map(sigma))
        out = (
            self._transformer(indices, labels, c)
            if self.shape.backbone == "Tran"
            else self._conv(indices, labels, c)
        )
        if self.shape.absorbing:  # ours (SEDD's scale_by_sigma for the mask graph)
            esigm1 = torch.where(sigma < 0.5, torch.expm1(sigma), sigma.exp() - 1)
            out = out - esigm1.log()[:, None, None] - math.log(self.shape.n_tokens - 1)
        return out

    def _transformer(self, indices: Tensor, labels: Tensor, c: Tensor) -> Tensor:
        x = self.vocab_embed(indices, labels)
        if self.shape.kmer_kernel > 1:
            x = x + self.ours_kmer_conv(x.transpose(1, 2)).transpose(1, 2)
        cos, sin = self.rotary_emb(x.shape[1])
        for block in self.blocks:
            x = block(x, cos, sin, c)
        x = self.output_layer(x, c)
        return torch.scatter(x, -1, indices[..., None], torch.zeros_like(x[..., :1]))

    def _conv(self, indices: Tensor, labels: Tensor, c: Tensor) -> Tensor:
        hot = F.one_hot(indices, self.shape.n_tokens).float()
        signal = labels.float() if self.shape.per_position else self.label_emb(labels.float())[:, :, None]
        out = swish(self.linear(torch.cat([hot, signal], -1).transpose(1, 2)))
        for conv, dense, norm in zip(self.conv_blocks, self.denses, self.norms, strict=True):
            out = out + swish(conv(norm(out + dense(c)[:, :, None])))
        return self.final(out).transpose(1, 2)


def default_shape(run: Run) -> Shape:
    """The shape of a model trained here (no upstream run folder): ``run.arch`` under upstream's names."""
    from tf2lightning.families.d3.diffusion import make_graph

    kind = dataset_kind(run)
    arch = run.arch
    backbone = str(arch.get("backbone") or run.arch_name)
    n_act = len(kind.activities)
    graph = make_graph(str(arch.get("graph", "uniform")))
    cond = int(arch.get("cond_dim", 128))
    promoter = kind.layout == "promoter"
    return Shape(
        backbone=backbone,
        n_tokens=graph.n_tokens,
        length=kind.length,
        hidden_size=int(arch.get("hidden_size", 128)),
        cond_dim=cond,
        n_blocks=int(arch.get("n_blocks", 2)),
        n_heads=int(arch.get("n_heads", 2)),
        n_signal=1 if promoter else n_act,
        per_position=promoter,
        label_classes=LABEL_CLASSES[kind.layout],
        label_emb_in=None if promoter else (n_act if kind.layout == "mpra" and backbone == "Conv" else 2),
        fourier=kind.layout == "deepstarr" and backbone == "Tran",
        conv_width=int(arch.get("conv_width", 256)),
        conv_embed_dim=cond,
        dropout=float(arch.get("dropout", 0.1)),
        absorbing=graph.absorbing,
        kmer_kernel=int(arch.get("kmer_kernel", 1)),
    )


def model_shape(run: Run) -> Shape:
    """From the upstream run folder ``arch.legacy_model`` when there is one, else :func:`default_shape`."""
    from tf2lightning.families.d3 import runfolder

    folder = runfolder.find(run)
    return runfolder.shape_of(run, folder) if folder is not None else default_shape(run)


def build(run: Run) -> SEDD:
    return SEDD(model_shape(run))


def probe_inputs(run: Run, n: int, seed: int) -> dict[str, np.ndarray]:
    """Probe inputs in upstream's order: token ids, labels (activities or a signal track), noise levels."""
    rng = np.random.default_rng(seed)
    shape = model_shape(run)
    label_shape = (n, shape.length, 1) if shape.per_position else (n, shape.n_signal)
    return {
        "x": rng.integers(0, shape.n_tokens, (n, shape.length)).astype(np.int64),
        "labels": rng.uniform(0.0, 3.0, label_shape).astype(np.float32),
        "sigma": np.exp(rng.uniform(np.log(1e-3), np.log(20.0), n)).astype(np.float32),
    }


def example_inputs(run: Run) -> tuple[Tensor, ...]:
    """A small batch for tracing and export."""
    return tuple(torch.from_numpy(a) for a in probe_inputs(run, 2, run.seed).values())


def parity_inputs(arrays: Mapping[str, np.ndarray]) -> tuple[Tensor, ...]:
    return tuple(torch.from_numpy(np.asarray(arrays[k])) for k in ("x", "labels", "sigma"))


def _identity(t: Tensor) -> Tensor:
    return t


def block_paths(shape: Shape) -> list[str]:
    """The module path of each block the backbone runs: DDiT ``blocks.i`` or the Conv's ``conv_blocks.i``
    (its dilated convolution, before the swish and the residual sum)."""
    if shape.backbone == "Tran":
        return [f"blocks.{i}" for i in range(shape.n_blocks)]
    return [f"conv_blocks.{i}" for i in range(len(CONV_DILATIONS))]


def parity_layers(run: Run) -> dict[str, str]:
    """A row per block where the reference is ``reference_forward``'s (it records each block's output);
    none where it is upstream's ``probe.npz``, which holds the log-scores only."""
    from tf2lightning.families.d3 import runfolder

    if runfolder.has_upstream_outputs(run):
        return {}
    return {path: path for path in block_paths(model_shape(run))}


PARITY_OUTPUTS: dict[str, Callable[[Tensor], Tensor]] = {"log_score": _identity}
