"""Clair3 checkpoint variables -> ``state_dict`` keys of ``model.Clair3P`` / ``model.Clair3F`` (no framework).

Source names are the object-graph attribute paths of the subclassed Keras models, as
:func:`checkpoint.read_checkpoint` reads them (``LSTM1/forward_layer/cell/kernel``, ``conv1/conv/kernel``,
``res_block1/layer_with_weights-0/conv1/kernel``: Keras 2 names the Sequential's block by its position among
the layers with weights; Keras 3 by its index after the input layer, ``res_block1/1/…``). Pileup models
may have 2 heads (upstream's released and Train.py pileup models) or 4. Conv2D kernels
``(kh, kw, in, out)`` -> ``(out, in, kh, kw)``; Dense kernels transposed; Keras LSTM gates i, f, c, o ==
torch i, f, g, o, one bias per direction -> ``bias_ih`` with ``bias_hh = 0``; BatchNorm moving statistics ->
running buffers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tf2lightning.core.weight_map import Rule, WeightMap, permute, transpose, zeros
from tf2lightning.families.clair3.checkpoint import network_sizes, read_checkpoint
from tf2lightning.families.clair3.labels import HEADS
from tf2lightning.families.clair3.platform import network_of
from tf2lightning.run import Run

_Y_NAMES = ("Y_gt21_logits", "Y_genotype_logits", "Y_indel_length_logits_1", "Y_indel_length_logits_2")


def dense_rules(heads: int = len(HEADS)) -> tuple[Rule, ...]:
    """L4, and ``L5_<k>`` (Keras, 1-based) -> ``heads.l5.<k-1>`` and the selu head layers of ``heads``
    heads."""
    return (
        Rule("L4/kernel", "heads.l4.weight", transpose()),
        Rule("L4/bias", "heads.l4.bias"),
        *(
            rule
            for k in range(heads)
            for rule in (
                Rule(f"L5_{k + 1}/kernel", f"heads.l5.{k}.weight", transpose()),
                Rule(f"L5_{k + 1}/bias", f"heads.l5.{k}.bias"),
                Rule(f"{_Y_NAMES[k]}/kernel", f"heads.y.{k}.weight", transpose()),
                Rule(f"{_Y_NAMES[k]}/bias", f"heads.y.{k}.bias"),
            )
        ),
    )


LSTM_RULES = (
    *(
        rule
        for layer, target in (("LSTM1", "lstm1"), ("LSTM2", "lstm2"))
        for direction, suffix in (("forward_layer", ""), ("backward_layer", "_reverse"))
        for rule in (
            Rule(f"{layer}/{direction}/cell/kernel", f"{target}.weight_ih_l0{suffix}", transpose()),
            Rule(f"{layer}/{direction}/cell/recurrent_kernel", f"{target}.weight_hh_l0{suffix}", transpose()),
            Rule(f"{layer}/{direction}/cell/bias", f"{target}.bias_ih_l0{suffix}"),
        )
    ),
    Rule(None, r"lstm[12]\.bias_hh_l0(?:_reverse)?", zeros),
)

_CONV_KERNEL = permute(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
_BN = (
    ("gamma", "weight"),
    ("beta", "bias"),
    ("moving_mean", "running_mean"),
    ("moving_variance", "running_var"),
)


def _conv_bn(source: str, target: str, conv: str, bn: str) -> tuple[Rule, ...]:
    """One Conv2D + BatchNorm pair; ``source``/``target`` are regex prefixes, groups carry over."""
    return (
        Rule(f"{source}/{conv}/kernel", f"{target}.{conv}.weight", _CONV_KERNEL),
        Rule(f"{source}/{conv}/bias", f"{target}.{conv}.bias"),
        *(Rule(f"{source}/{bn}/{k}", f"{target}.{bn}.{t}") for k, t in _BN),
    )


CONV_RULES = (
    *(rule for stage in ("conv1", "conv3", "conv5") for rule in _conv_bn(stage, stage, "conv", "bn")),
    # The Sequential's one block: Keras 2 ``layer_with_weights-0``, Keras 3 ``1`` (after its input layer).
    *_conv_bn(r"(res_block[123])/(?:layer_with_weights-0|1)", r"\1.0", "conv1", "bn1"),
    *_conv_bn(r"(res_block[123])/(?:layer_with_weights-0|1)", r"\1.0", "conv2", "bn2"),
    Rule(None, r".*\.num_batches_tracked", zeros),
)


def weight_map(run: Run) -> WeightMap:
    """The table of the run's network (with as many heads as its checkpoint or config has)."""
    trunk = LSTM_RULES if network_of(run) == "P" else CONV_RULES
    return WeightMap(trunk + dense_rules(int(network_sizes(run)["heads"])))


def read_source(run: Run, path: Path) -> dict[str, np.ndarray]:
    """The model variables of the run's network in ``path`` (see :mod:`checkpoint`): a released model
    folder, a checkpoint prefix or a Train.py SavedModel folder."""
    return read_checkpoint(path, network_of(run))
