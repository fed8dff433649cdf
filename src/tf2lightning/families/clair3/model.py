"""Native PyTorch ports of Clair3's two networks (channels-first inside, the stored layout outside).

Both return the four heads' pre-softmax values ``(gt21, genotype, indel_length_1, indel_length_2)``; the
Keras model's probabilities are their softmax. What the port has to get right:

* TF 'same' padding at stride 2 puts the odd extra row/column on the bottom/right (:func:`same_padding`);
  'SAME' max-pooling pads with -inf. With depth 89 every stage pads symmetrically, depth 55 does not.
* BatchNorm eps 1e-3 (Keras), momentum 0.01 (= 1 - Keras 0.99).
* Pyramid-pooled maps are flattened in NHWC order, as Keras flattens them.
* Keras LSTM gates i, f, c, o equal torch's i, f, g, o; one bias (``bias_hh`` is zero).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tf2lightning.core.parity import channels_first_to_last
from tf2lightning.families.clair3.checkpoint import network_sizes
from tf2lightning.families.clair3.labels import HEAD_SIZES, HEADS
from tf2lightning.families.clair3.platform import TENSOR_FIELD, network_of, platform_of
from tf2lightning.run import Run

NORMALIZE_NUM = 100.0
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding of one dimension: ``(before, after)``, the odd extra after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: Tensor, kernel: tuple[int, int], stride: tuple[int, int], value: float = 0.0) -> Tensor:
    """Pad an NCHW tensor as TF 'SAME' would for this kernel and stride."""
    top, bottom = same_padding(x.shape[-2], kernel[0], stride[0])
    left, right = same_padding(x.shape[-1], kernel[1], stride[1])
    return F.pad(x, (left, right, top, bottom), value=value)


class SameConv2d(nn.Conv2d):
    """``Conv2D(padding='same')`` with TF's asymmetric padding at any stride."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(pad_same(x, self.kernel_size, self.stride))


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class BasicConv2d(nn.Module):
    """Conv ('same', stride 2) + BatchNorm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        self.conv = SameConv2d(in_channels, out_channels, 3, stride)
        self.bn = batch_norm(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    """Two 3x3 conv + BatchNorm, identity shortcut, ReLU after the sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = SameConv2d(channels, channels, 3)
        self.bn1 = batch_norm(channels)
        self.conv2 = SameConv2d(channels, channels, 3)
        self.bn2 = batch_norm(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(x + y)


class PyramidPooling(nn.Module):
    """Max pooling into ``bins x bins`` grids (window = stride = ceil(size / bins), 'SAME' with -inf),
    each flattened in NHWC order, concatenated."""

    def __init__(self, bins: tuple[int, ...] = (3, 2, 1)) -> None:
        super().__init__()
        self.bins = tuple(bins)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2], x.shape[-1]
        pooled = []
        for n in self.bins:
            window = (-(-height // n), -(-width // n))
            padded = pad_same(x, window, window, value=float("-inf"))
            pooled.append(F.max_pool2d(padded, window, window).permute(0, 2, 3, 1).flatten(1))
        return torch.cat(pooled, dim=1)

    @staticmethod
    def n_cells(height: int, width: int, bins: tuple[int, ...] = (3, 2, 1)) -> int:
        """Output cells per channel for an input of ``height x width``."""
        return sum(-(-height // -(-height // n)) * -(-width // -(-width // n)) for n in bins)


class SeluDense(nn.Linear):
    """``Dense(activation='selu')``."""

    def forward(self, x: Tensor) -> Tensor:
        return F.selu(super().forward(x))


class Heads(nn.Module):
    """L4 (SELU, dropout 0.5), one L5 branch (SELU, dropout 0.2) and one SELU head layer per head: the
    first ``heads`` of ``labels.HEADS`` (4, or 2 for upstream's pileup models: gt21 and genotype)."""

    def __init__(self, in_features: int, l4_units: int, l5_units: int, heads: int = len(HEADS)) -> None:
        super().__init__()
        self.l4 = SeluDense(in_features, l4_units)
        self.l4_dropout = nn.Dropout(0.5)
        self.l5 = nn.ModuleList(SeluDense(l4_units, l5_units) for _ in range(heads))
        self.l5_dropout = nn.Dropout(0.2)
        self.y = nn.ModuleList(SeluDense(l5_units, size) for size in HEAD_SIZES[:heads])

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x = self.l4_dropout(self.l4(x))
        return tuple(head(self.l5_dropout(branch(x))) for branch, head in zip(self.l5, self.y, strict=True))


class Clair3P(nn.Module):
    """Pileup network: ``(N, 33, 18)`` counts -> two BiLSTMs -> flatten -> heads."""

    def __init__(
        self,
        positions: int,
        channels: int,
        lstm1_units: int,
        lstm2_units: int,
        l4_units: int,
        l5_units: int,
        heads: int = len(HEADS),
    ) -> None:
        super().__init__()
        self.lstm1 = nn.LSTM(channels, lstm1_units, batch_first=True, bidirectional=True)
        self.lstm2 = nn.LSTM(2 * lstm1_units, lstm2_units, batch_first=True, bidirectional=True)
        self.l3_dropout = nn.Dropout(0.2)
        self.heads = Heads(positions * 2 * lstm2_units, l4_units, l5_units, heads)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x, _ = self.lstm1(x.float())
        x, _ = self.lstm2(x)
        return self.heads(self.l3_dropout(x).flatten(1))


class Clair3F(nn.Module):
    """Full-alignment network: ``(N, depth, 33, 8)`` int8 reads (NHWC, divided by 100) -> three stride-2
    conv stages, each followed by one residual block (a Sequential, as in Clair3) -> pyramid pooling ->
    heads."""

    def __init__(
        self,
        depth: int,
        positions: int,
        channels: int,
        conv_filters: tuple[int, int, int],
        l4_units: int,
        l5_units: int,
        heads: int = len(HEADS),
    ) -> None:
        super().__init__()
        f1, f2, f3 = conv_filters
        self.conv1 = BasicConv2d(channels, f1)
        self.res_block1 = nn.Sequential(BasicBlock(f1))
        self.conv3 = BasicConv2d(f1, f2)
        self.res_block2 = nn.Sequential(BasicBlock(f2))
        self.conv5 = BasicConv2d(f2, f3)
        self.res_block3 = nn.Sequential(BasicBlock(f3))
        self.pyramid = PyramidPooling()
        self.l3_dropout = nn.Dropout(0.2)
        height, width = depth, positions
        for _ in range(3):
            height, width = -(-height // 2), -(-width // 2)
        self.heads = Heads(f3 * PyramidPooling.n_cells(height, width), l4_units, l5_units, heads)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x = x.float().permute(0, 3, 1, 2) / NORMALIZE_NUM  # NHWC -> NCHW
        x = self.res_block1(self.conv1(x))
        x = self.res_block2(self.conv3(x))
        x = self.res_block3(self.conv5(x))
        return self.heads(self.l3_dropout(self.pyramid(x)))


def build(run: Run) -> Clair3P | Clair3F:
    """The run's network, sized by its ``legacy_model`` checkpoint when it has one, else by ``run.arch``
    (defaults: the published widths); see :func:`checkpoint.network_sizes`."""
    platform, sizes = platform_of(run), network_sizes(run)
    common = {
        "l4_units": int(sizes["l4_units"]),
        "l5_units": int(sizes["l5_units"]),
        "heads": int(sizes["heads"]),
    }
    if network_of(run) == "P":
        lstm = int(sizes["lstm1_units"]), int(sizes["lstm2_units"])
        return Clair3P(platform.positions, platform.pileup_channels, *lstm, **common)
    f1, f2, f3 = (int(f) for f in sizes["conv_filters"])
    return Clair3F(platform.depth, platform.positions, platform.fa_channels, (f1, f2, f3), **common)


def example_inputs(run: Run) -> tuple[Tensor, ...]:
    """Two random sites in the stored layout (float, integral values) for tracing and export."""
    shape = platform_of(run).input_shape(network_of(run))
    generator = torch.Generator().manual_seed(run.seed)
    return (torch.randint(-100, 101, (2, *shape), generator=generator).float(),)


def probabilities(outputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Softmax of each head, as the Keras model outputs them."""
    return tuple(t.softmax(-1) for t in outputs)


def exported_outputs(outputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """What an export is checked on: the heads' probabilities (what upstream's model returns; the raw
    SELU head values reach 50 and more, where 1e-5 is below float32 resolution)."""
    return probabilities(outputs)


def _identity(t: Tensor) -> Tensor:
    return t


def _head(index: int) -> Callable[[tuple[Tensor, ...]], Tensor]:
    def softmax_of(outputs: tuple[Tensor, ...]) -> Tensor:
        return outputs[index].softmax(-1)

    return softmax_of


_DENSE = {
    "L4": ("heads.l4", _identity),
    **{f"L5_{i + 1}": (f"heads.l5.{i}", _identity) for i in range(4)},
    "Y_gt21_logits": ("heads.y.0", _identity),
    "Y_genotype_logits": ("heads.y.1", _identity),
    "Y_indel_length_logits_1": ("heads.y.2", _identity),
    "Y_indel_length_logits_2": ("heads.y.3", _identity),
}
_CONV = {
    name: (name, channels_first_to_last)
    for name in ("conv1", "res_block1", "conv3", "res_block2", "conv5", "res_block3")
}
# Keras layer name -> (torch module path, torch activation -> Keras layout), per network. nn.LSTM
# contributes its first output (the sequence), already (N, T, 2u) like Keras' Bidirectional concat.
PARITY_LAYERS_BY_NETWORK: dict[str, dict[str, tuple[str, Callable[[Tensor], Tensor]]]] = {
    "P": {"LSTM1": ("lstm1", _identity), "LSTM2": ("lstm2", _identity), **_DENSE},
    "F": {**_CONV, "pyramidpolling": ("pyramid", _identity), **_DENSE},
}
PARITY_OUTPUTS: dict[str, Callable[[tuple[Tensor, ...]], Tensor]] = {
    name: _head(i) for i, name in enumerate(HEADS)
}


def parity_outputs(run: Run) -> dict[str, Callable[[tuple[Tensor, ...]], Tensor]]:
    """``PARITY_OUTPUTS`` of the heads the run's network has (2 or 4)."""
    return dict(list(PARITY_OUTPUTS.items())[: int(network_sizes(run)["heads"])])


def parity_layers(run: Run) -> dict[str, tuple[str, Callable[[Tensor], Tensor]]]:
    """The Keras-layer -> torch-module table of the run's network (the two networks share no trunk
    layer, so the parity stage asks for this instead of one ``PARITY_LAYERS``)."""
    heads = int(network_sizes(run)["heads"])
    absent = {f"L5_{k + 1}" for k in range(heads, len(HEADS))} | {
        f"heads.y.{k}" for k in range(heads, len(HEADS))
    }
    return {
        name: entry
        for name, entry in PARITY_LAYERS_BY_NETWORK[network_of(run)].items()
        if name not in absent and entry[0] not in absent
    }


def parity_inputs(arrays: dict[str, object]) -> tuple[Tensor, ...]:
    """The reference's one input (``pileup`` or ``full_alignment``, int8) as the port's argument."""
    (name,) = [k for k in arrays if k in TENSOR_FIELD.values()]
    return (torch.from_numpy(arrays[name]),)  # type: ignore[arg-type]
