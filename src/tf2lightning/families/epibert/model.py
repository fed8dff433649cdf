"""The native PyTorch EpiBERT (see ``legacy`` for the architecture and the source's conventions).

Rotary convention: **interleaved pairs**. The source's ``apply_rotary_pos_emb`` repeats each frequency for
adjacent features (``repeat(t, 'b n -> b (n j)', j=2)``) and rotates with ``rotate_every_two``, which
pairs features ``(2i, 2i+1)``; half-split ``rotate_half`` exists in the source only as commented-out code.
Attention is the source's Performer FAVOR+ (ReLU kernel, 256 random features, see ``favor``) by default,
exact softmax attention (``scaled_dot_product_attention``) when ``attention: softmax``; LayerNorm and
BatchNorm use the source's eps 1e-5 (BatchNorm momentum ``1 - bn_momentum``). GELUs are tanh-approximate
(``tfa.layers.GELU``) except the motif GELU (erf). Convolutions are channels-first; the transformer works
on ``(N, tokens, d)``.

The forward returns upstream's outputs in upstream's order: the ATAC profile ``out`` ``(N, bins, 1)``;
a fine-tuning architecture (``mode: finetune``) adds the expression head ``rna_head*`` and returns
``(out_atac, out_rna)``, each ``(N, bins, 1)``, as upstream's ``epibert_rampage_finetune`` with
``predict_atac``. :func:`tracks` stacks them ``(N, bins[, 2])`` for the losses and metrics.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tf2lightning.core.reference_file import Reference
from tf2lightning.families.epibert import favor, layer_names, recorded
from tf2lightning.families.epibert.geometry import Geometry, geometry, rotary_table
from tf2lightning.families.epibert.modes import is_finetune
from tf2lightning.run import Run

EPS = 1e-5


class ConvBlock(nn.Module):
    """BatchNorm -> GELU (tanh) -> Conv1d ('same', stride 1: torch pads the odd extra on the right, as TF)."""

    def __init__(self, c_in: int, c_out: int, width: int, momentum: float) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(c_in, eps=EPS, momentum=1.0 - momentum)
        self.act = nn.GELU(approximate="tanh")
        self.conv = nn.Conv1d(c_in, c_out, width, padding="same")

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.act(self.bn(x)))


class Residual(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class Stem(nn.Module):
    """Conv1d(width) followed by a residual pointwise conv block."""

    def __init__(self, c_in: int, c_out: int, width: int, momentum: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, width, padding="same")
        self.res = Residual(ConvBlock(c_out, c_out, 1, momentum))

    def forward(self, x: Tensor) -> Tensor:
        return self.res(self.conv(x))


class SoftmaxPool1d(nn.Module):
    """Softmax pooling over windows of ``pool_size``: weights ``softmax(w · x)`` within each window."""

    def __init__(self, channels: int, pool_size: int = 2) -> None:
        super().__init__()
        self.pool_size = pool_size
        self.logit = nn.Linear(channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, L) -> (N, C, L // pool)
        n, c, length = x.shape
        windows = x.reshape(n, c, length // self.pool_size, self.pool_size)
        weights = torch.einsum("nclp,c->nlp", windows, self.logit.weight[0]).softmax(-1)
        return (windows * weights.unsqueeze(1)).sum(-1)


class TowerBlock(nn.Module):
    def __init__(self, block: ConvBlock, pool: nn.Module) -> None:
        super().__init__()
        self.block = block
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.block(x))


def rotate_every_two(x: Tensor) -> Tensor:
    """Interleaved pairs ``(x[2i], x[2i+1]) -> (-x[2i+1], x[2i])``."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), -1).flatten(-2)


class RotaryAttention(nn.Module):
    """Bias-free multi-head self-attention with interleaved rotary embeddings on queries and keys.

    ``kind`` ``"performer"`` (the source's): FAVOR+ with the ReLU kernel, features
    ``relu(x P^T / sqrt(m)) + 1e-3`` from the fixed ``(m, head_dim)`` matrix ``P`` that ``favor`` draws
    from ``seed`` (a buffer, not a weight: the source regenerates it rather than saving it), normalised by
    ``q' . sum_l k'``. ``"softmax"``: exact attention, ``scaled_dot_product_attention`` (ours, opt-in).
    """

    def __init__(self, d: int, heads: int, n_tokens: int, kind: str = "performer", seed: int = 0) -> None:
        super().__init__()
        if kind not in ("performer", "softmax"):
            raise ValueError(f"attention must be 'performer' or 'softmax', not {kind!r}")
        self.heads, self.head_dim, self.kind = heads, d // heads, kind
        self.query = nn.Linear(d, d, bias=False)
        self.key = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d, bias=False)
        self.output = nn.Linear(d, d, bias=False)
        sin, cos = rotary_table(n_tokens, self.head_dim)
        self.register_buffer("sin", torch.from_numpy(sin)[:, None, :], persistent=False)  # (T, 1, hd)
        self.register_buffer("cos", torch.from_numpy(cos)[:, None, :], persistent=False)
        if kind == "performer":
            matrix = favor.projection_matrix(favor.NB_RANDOM_FEATURES, self.head_dim, seed)
            scaled = matrix / np.sqrt(np.float32(matrix.shape[0]))
            self.register_buffer("projection", torch.from_numpy(scaled.T.copy()), persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # (N, T, d)
        q, k, v = (
            layer(x).unflatten(-1, (self.heads, self.head_dim))
            for layer in (self.query, self.key, self.value)
        )
        q = q * self.cos + rotate_every_two(q) * self.sin
        k = k * self.cos + rotate_every_two(k) * self.sin
        if self.kind == "performer":
            out = self._favor(q, k, v)
        else:
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            ).transpose(1, 2)
        return self.output(out.flatten(-2))

    def _favor(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:  # (N, T, H, hd) each
        q_prime = F.relu(q @ self.projection) + favor.KERNEL_STABILIZER  # (N, T, H, m)
        k_prime = F.relu(k @ self.projection) + favor.KERNEL_STABILIZER
        kv = torch.einsum("nlhm,nlhd->nhmd", k_prime, v)
        numerator = torch.einsum("nlhm,nhmd->nlhd", q_prime, kv)
        denominator = torch.einsum("nlhm,nhm->nlh", q_prime, k_prime.sum(1))
        return numerator / denominator.unsqueeze(-1)


class FeedForward(nn.Module):
    def __init__(self, d: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(d, eps=EPS)
        self.wide = nn.Linear(d, 2 * d)
        self.dropout1 = nn.Dropout(dropout)
        self.act = nn.ReLU() if activation == "relu" else nn.GELU()
        self.narrow = nn.Linear(2 * d, d)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout2(self.narrow(self.act(self.dropout1(self.wide(self.ln(x))))))


class TransformerLayer(nn.Module):
    """Pre-LayerNorm attention and feed-forward, each added back to its input."""

    def __init__(self, d: int, n_tokens: int, dropout: float, arch: dict) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(d, eps=EPS)
        self.attention = RotaryAttention(
            d, int(arch["num_heads"]), n_tokens, str(arch["attention"]), int(arch["seed"])
        )
        self.dropout = nn.Dropout(dropout)
        self.ffn = FeedForward(d, dropout, str(arch["ffn_activation"]))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.dropout(self.attention(self.ln(x)))
        return x + self.ffn(x)


class EpiBERT(nn.Module):
    """``(sequence one-hot (N, L, 4), ATAC (N, La[, 1]), motif activity (N[, 1], M))`` -> upstream's
    outputs: the ATAC profile ``(N, T - 2 crop, 1)`` (softplus rates per output bin); fine-tuning:
    ``(ATAC profile, expression profile)``, each ``(N, T - 2 crop, 1)``."""

    def __init__(self, geo: Geometry, arch: dict) -> None:
        super().__init__()
        self.crop = geo.crop
        momentum = float(arch["bn_momentum"])
        seq = [int(f) for f in arch["filter_list_seq"]]
        atac = [int(f) for f in arch["filter_list_atac"]]
        d, units = seq[-1], int(arch["motif_units_fc"])
        self.stem = Stem(4, seq[0], 15, momentum)
        self.stem_pool = SoftmaxPool1d(seq[0])
        self.tower = nn.ModuleList(
            TowerBlock(ConvBlock(c_in, c_out, 5, momentum), SoftmaxPool1d(c_out))
            for c_in, c_out in zip([seq[0], *seq[:-1]], seq, strict=True)
        )
        a0 = int(arch["atac_stem_filters"])
        self.atac_stem = Stem(1, a0, 50, momentum)
        self.atac_stem_pool = nn.MaxPool1d(2)
        self.atac_tower = nn.ModuleList(
            TowerBlock(ConvBlock(c_in, c_out, 5, momentum), nn.MaxPool1d(int(arch["atac_pool"])))
            for c_in, c_out in zip([a0, *atac[:-1]], atac, strict=True)
        )
        self.motif_fc1 = nn.Linear(geo.n_motifs, units)
        self.motif_gelu = nn.GELU()
        self.motif_dropout1 = nn.Dropout(float(arch["motif_dropout"]))
        self.motif_fc2 = nn.Linear(units, units // 4)
        self.motif_dropout2 = nn.Dropout(float(arch["motif_dropout"]) / 4)
        self.projection = nn.Linear(d + atac[-1] + units // 4, d, bias=False)
        self.layers = nn.ModuleList(
            TransformerLayer(d, geo.n_tokens, float(arch["dropout"]), arch)
            for _ in range(int(arch["num_layers"]))
        )
        self.final_ln = nn.LayerNorm(d, eps=EPS)
        width, rate = d // int(arch["final_point_scale"]), float(arch["pointwise_dropout"])
        self.head = ConvBlock(d, width, 1, momentum)
        self.head_dropout = nn.Dropout(rate)
        self.head_gelu2 = nn.GELU(approximate="tanh")
        self.head_dense = nn.Linear(width, 1)
        self.head_softplus = nn.Softplus()
        self.finetune = is_finetune(arch)
        if self.finetune:  # the expression head: the same form, its own weights
            self.rna_head = ConvBlock(d, width, 1, momentum)
            self.rna_head_dropout = nn.Dropout(rate)
            self.rna_head_gelu2 = nn.GELU(approximate="tanh")
            self.rna_head_dense = nn.Linear(width, 1)
            self.rna_head_softplus = nn.Softplus()

    def encode(self, sequence: Tensor, atac: Tensor, motif: Tensor) -> Tensor:
        """The transformer's input tokens ``(N, T, d)``. ``atac`` is ``(N, La)`` or upstream's
        ``(N, La, 1)``, ``motif`` ``(N, M)`` or upstream's ``(N, 1, M)``."""
        atac, motif = atac.flatten(1), motif.flatten(1)
        x = self.stem_pool(self.stem(sequence.transpose(1, 2)))
        for block in self.tower:
            x = block(x)
        a = self.atac_stem_pool(self.atac_stem(atac.unsqueeze(1)))
        for block in self.atac_tower:
            a = block(a)
        m = self.motif_dropout2(self.motif_fc2(self.motif_dropout1(self.motif_gelu(self.motif_fc1(motif)))))
        m = m.unsqueeze(1).expand(-1, x.shape[-1], -1)
        return self.projection(torch.cat([x.transpose(1, 2), a.transpose(1, 2), m], dim=-1))

    def forward(self, sequence: Tensor, atac: Tensor, motif: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        x = self.encode(sequence, atac, motif)
        for layer in self.layers:
            x = layer(x)
        x = self.final_ln(x)
        profile = self._head(x, "head")
        if not self.finetune:
            return profile
        return profile, self._head(x, "rna_head")

    def _head(self, x: Tensor, prefix: str) -> Tensor:
        """Head ``prefix`` on the tokens ``(N, T, d)`` -> cropped softplus rates ``(N, T - 2 crop, 1)``."""
        x = getattr(self, prefix)(x.transpose(1, 2)).transpose(1, 2)
        for part in ("dropout", "gelu2", "dense", "softplus"):
            x = getattr(self, f"{prefix}_{part}")(x)
        return x[:, self.crop : x.shape[1] - self.crop]


def tracks(outputs: Tensor | tuple[Tensor, ...]) -> Tensor:
    """The port's outputs as one tensor: the ATAC profile ``(N, bins)``, or ATAC and expression stacked
    ``(N, bins, 2)`` (fine-tuning)."""
    if isinstance(outputs, tuple):
        return torch.cat(outputs, dim=-1)
    return outputs[..., 0]


def build(run: Run) -> EpiBERT:
    return EpiBERT(geometry(run), dict(run.arch))


def example_inputs(run: Run) -> tuple[Tensor, ...]:
    """A batch of two random examples for tracing and export, in upstream's layout: sequence
    ``(N, L, 4)``, ATAC ``(N, La, 1)``, motif activity ``(N, 1, M)``."""
    geo = geometry(run)
    g = torch.Generator().manual_seed(run.seed)
    codes = torch.randint(0, 5, (2, geo.input_length), generator=g)
    sequence = F.one_hot(codes, 5)[..., :4].float()
    atac = torch.rand(2, geo.atac_length, 1, generator=g) * 3
    return sequence, atac, torch.rand(2, 1, geo.n_motifs, generator=g)


def _channels_last(t: Tensor) -> Tensor:
    return t.transpose(1, 2)


def _same(t: Tensor) -> Tensor:
    return t


def _motif(t: Tensor) -> Tensor:
    """The motif branch ``(N, units)`` as upstream's ``(N, 1, units)``."""
    return t.unsqueeze(1)


LAYOUTS: dict[str, Callable[[Tensor], Tensor]] = {
    "channels_last": _channels_last,
    "same": _same,
    "motif": _motif,
}


def parity_layers(run: Run) -> dict[str, tuple[str, Callable[[Tensor], Tensor]]]:
    """Every compared layer of ``run`` (Keras name -> torch module path, layout)."""
    return {k: (path, LAYOUTS[layout]) for k, (path, layout) in layer_names.parity_layers(run).items()}


# The generic parity stage reads a static table: the layers every configuration has (see layer_names).
PARITY_LAYERS = {k: (path, LAYOUTS[layout]) for k, (path, layout) in layer_names.STATIC.items()}


def parity_inputs(arrays: dict) -> tuple[Tensor, ...]:
    """Probe inputs ``sequence``, ``atac`` ``(N, La, 1)``, ``motif_activity`` ``(N, M)`` (our Keras model)
    or ``(N, 1, M)`` (upstream's) -> float32 tensors in upstream's layout, as :func:`example_inputs`."""
    motif = np.asarray(arrays["motif_activity"], dtype=np.float32)
    return (
        torch.from_numpy(np.asarray(arrays["sequence"], dtype=np.float32)),
        torch.from_numpy(np.asarray(arrays["atac"], dtype=np.float32)),
        torch.from_numpy(motif[:, None] if motif.ndim == 2 else motif),
    )


def _atac(outputs: tuple[Tensor, Tensor]) -> Tensor:
    return outputs[0]


def _rna(outputs: tuple[Tensor, Tensor]) -> Tensor:
    return outputs[1]


def _stacked(outputs: tuple[Tensor, Tensor]) -> Tensor:
    return torch.cat(outputs, dim=-1)


_PRETRAIN_OUTPUTS: dict[str, Callable] = {"profile": _same, "out": _same}
_FINETUNE_OUTPUTS: dict[str, Callable] = {"tracks": _stacked, "out_atac": _atac, "out_rna": _rna}
# Every reference output name -> the port's: for readers that pick the names a reference has.
PARITY_OUTPUTS: dict[str, Callable] = {**_PRETRAIN_OUTPUTS, **_FINETUNE_OUTPUTS}


def parity_outputs(run: Run) -> dict[str, Callable]:
    """The reference's output names -> the port's. The port returns upstream's ``out`` (N, bins, 1), or
    ``(out_atac, out_rna)``; our Keras model returns ``profile`` (N, bins, 1), or ``tracks`` (N, bins, 2).
    Only the outputs in the reference are compared."""
    return _FINETUNE_OUTPUTS if is_finetune(run.arch) else _PRETRAIN_OUTPUTS


def parity_failure_hint(run: Run, reference: Reference) -> str:
    """Against upstream's recorded outputs (``recorded``), a port that loads but differs most likely has
    a setting the checkpoint does not fix wrong: say which, with the values in use."""
    probe = reference.attrs.get(recorded.REFERENCE_ATTR)
    if not probe:
        return ""
    return (
        f"The reference outputs are upstream's recorded ones ({probe}), the layers a rebuild with this "
        f"config's settings: check {recorded.unstored_settings(run.arch)}"
    )
