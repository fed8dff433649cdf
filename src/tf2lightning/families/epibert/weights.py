"""Keras variable names of the legacy EpiBERT -> ``state_dict`` keys of ``model.EpiBERT`` (no framework).

Source names are canonical ``<layer>/<variable>`` names of the workflow's Keras model. Upstream's own
checkpoints (a ``tf.train.CheckpointManager`` folder written by its training scripts) name the same
variables by their Keras-2 object-graph paths (``conv_tower/layer_with_weights-0/...``,
``performer/0/self_attention/query_dense_layer/kernel``); :data:`UPSTREAM_NAMES` renames them (the model's
variables only: optimizer slots and bookkeeping variables are not under ``model/``), and
:func:`checkpoint_sizes` reads the sizes their shapes fix.
Conv1D kernels ``(k, in, out)`` -> ``permute(2, 1, 0)``; Dense kernels transpose; attention ``DenseEinsum``
kernels ``(d, heads, head_dim)`` -> ``reshape(d, d).T`` and the output ``(heads, head_dim, d)`` ->
``reshape(d, d).T``; BatchNorm keeps its moving statistics (``num_batches_tracked`` is zero).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from tf2lightning.core.tf_checkpoint import (
    list_tf_checkpoint,
    read_layer_variables,
    resolve_checkpoint_prefix,
)
from tf2lightning.core.weight_map import Rule, WeightMap, chain, permute, reshape, transpose, zeros
from tf2lightning.errors import FormatError
from tf2lightning.run import Run

_W = r"layer_with_weights-"
# Upstream's variable paths (under ``model/``, list containers dropped) -> the canonical names below.
# A conv block is Sequential([BatchNorm, GELU, Conv1D]): weighted layer 0 is the BatchNorm, 1 the conv.
UPSTREAM_NAMES: list[tuple[str, str]] = [
    (r"stem_conv/(kernel|bias)", r"stem_conv/\1"),
    (r"stem_conv_atac/(kernel|bias)", r"atac_stem_conv/\1"),
    (rf"stem_res_conv/layer/{_W}0/(\w+)", r"stem_res_bn/\1"),
    (rf"stem_res_conv/layer/{_W}1/(\w+)", r"stem_res_conv/\1"),
    (rf"stem_res_conv_atac/layer/{_W}0/(\w+)", r"atac_stem_res_bn/\1"),
    (rf"stem_res_conv_atac/layer/{_W}1/(\w+)", r"atac_stem_res_conv/\1"),
    (r"stem_pool/dense/kernel", r"stem_pool/kernel"),
    (rf"conv_tower/{_W}(\d+)/{_W}0/{_W}0/(\w+)", r"tower_\1_bn/\2"),
    (rf"conv_tower/{_W}(\d+)/{_W}0/{_W}1/(\w+)", r"tower_\1_conv/\2"),
    (rf"conv_tower/{_W}(\d+)/{_W}1/dense/kernel", r"tower_\1_pool/kernel"),
    (rf"conv_tower_atac/{_W}(\d+)/{_W}0/{_W}0/(\w+)", r"atac_tower_\1_bn/\2"),
    (rf"conv_tower_atac/{_W}(\d+)/{_W}0/{_W}1/(\w+)", r"atac_tower_\1_conv/\2"),
    (r"motif_activity_fc([12])/(kernel|bias)", r"motif_fc\1/\2"),
    (r"pre_transformer_projection/kernel", r"projection/kernel"),
    (r"performer/(\d+)/layer_norm/(\w+)", r"layer_\1_ln/\2"),
    (r"performer/(\d+)/self_attention/(query|key|value|output)_dense_layer/kernel", r"layer_\1_attention/\2"),
    (r"performer/(\d+)/FFN/FFN_layer_norm/(\w+)", r"layer_\1_ffn_ln/\2"),
    (r"performer/(\d+)/FFN/FFN_dense_(wide|narrow)/(\w+)", r"layer_\1_ffn_\2/\3"),
    (r"performer/layer_norm/(\w+)", r"final_ln/\1"),
    (rf"final_pointwise_conv/{_W}0/(\w+)", r"head_bn/\1"),
    (rf"final_pointwise_conv/{_W}1/(\w+)", r"head_conv/\1"),
    (r"final_dense_profile/(kernel|bias)", r"head_dense/\1"),
    (rf"final_pointwise_conv_rna/{_W}0/(\w+)", r"rna_head_bn/\1"),
    (rf"final_pointwise_conv_rna/{_W}1/(\w+)", r"rna_head_conv/\1"),
    (r"final_dense_profile_rna/(kernel|bias)", r"rna_head_dense/\1"),
]
_UPSTREAM_MARK = "pre_transformer_projection/kernel"


def _canonical(name: str, where: Path) -> str:
    for pattern, template in UPSTREAM_NAMES:
        match = re.fullmatch(pattern, name)
        if match:
            return match.expand(template)
    raise FormatError(f"{where}: model variable {name!r} is not one of upstream EpiBERT's")


def read_source(run: Run, path: str | Path) -> dict[str, np.ndarray]:
    """The model variables of a checkpoint folder (its ``checkpoint`` file names the latest ``ckpt-N``),
    a chosen ``ckpt-N`` prefix or ``.index`` file, by canonical names; upstream's are renamed."""
    prefix = resolve_checkpoint_prefix(path)
    variables = read_layer_variables(prefix, root="model")
    if _UPSTREAM_MARK not in variables:
        return variables
    return {_canonical(name, prefix): array for name, array in variables.items()}


def upstream_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape of an upstream checkpoint's model variables, from its ``.index`` alone
    (no tensor is read: cheap enough to check a configuration before any job)."""
    prefix = resolve_checkpoint_prefix(path)
    shapes = {}
    for key, (_, shape) in list_tf_checkpoint(prefix).items():
        if not key.startswith("model/") or "/.OPTIMIZER_SLOT/" in key:
            continue
        name = key.removeprefix("model/").removesuffix("/.ATTRIBUTES/VARIABLE_VALUE")
        name = name.replace("performer/layers/", "performer/").replace("/_layer/", "/layer/")
        shapes[_canonical(name, prefix)] = tuple(shape)
    if not shapes:
        raise FormatError(f"{prefix}: no model variables under 'model/'")
    return shapes


def _count(names: set[str], pattern: str) -> int:
    return len({m.group(1) for n in names if (m := re.fullmatch(pattern, n))})


def checkpoint_sizes(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The arch values that the variables' shapes (by canonical name) fix, and ``n_motifs`` for the
    dataset. The head count is the attention kernels' middle axis; the Performer ``seed`` shapes nothing."""
    names = set(shapes)
    n_seq = _count(names, r"tower_(\d+)_conv/kernel")
    n_atac = _count(names, r"atac_tower_(\d+)_conv/kernel")
    d = shapes[f"tower_{n_seq - 1}_conv/kernel"][-1]
    return {
        "filter_list_seq": [int(shapes[f"tower_{i}_conv/kernel"][-1]) for i in range(n_seq)],
        "filter_list_atac": [int(shapes[f"atac_tower_{i}_conv/kernel"][-1]) for i in range(n_atac)],
        "atac_stem_filters": int(shapes["atac_stem_conv/kernel"][-1]),
        "num_layers": _count(names, r"layer_(\d+)_ln/gamma"),
        "num_heads": int(shapes["layer_0_attention/query"][1]),  # DenseEinsum kernel (d, heads, head_dim)
        "motif_units_fc": int(shapes["motif_fc1/kernel"][-1]),
        "final_point_scale": int(d // shapes["head_conv/kernel"][-1]),
        "mode": "finetune" if "rna_head_dense/kernel" in names else "pretrain",
        "n_motifs": int(shapes["motif_fc1/kernel"][0]),
    }


def weight_map(run: Run) -> WeightMap:
    """The mapping table; the attention reshape needs the model width ``d``."""
    d = int(run.arch["filter_list_seq"][-1])
    attention = chain(reshape(d, d), transpose())
    rules = [
        # stems: conv and the residual conv block
        Rule(r"(stem|atac_stem)_conv/kernel", r"\1.conv.weight", permute(2, 1, 0)),
        Rule(r"(stem|atac_stem)_conv/bias", r"\1.conv.bias"),
        Rule(r"(stem|atac_stem)_res_conv/kernel", r"\1.res.block.conv.weight", permute(2, 1, 0)),
        Rule(r"(stem|atac_stem)_res_conv/bias", r"\1.res.block.conv.bias"),
        Rule(r"(stem|atac_stem)_res_bn/gamma", r"\1.res.block.bn.weight"),
        Rule(r"(stem|atac_stem)_res_bn/beta", r"\1.res.block.bn.bias"),
        Rule(r"(stem|atac_stem)_res_bn/moving_mean", r"\1.res.block.bn.running_mean"),
        Rule(r"(stem|atac_stem)_res_bn/moving_variance", r"\1.res.block.bn.running_var"),
        # tower blocks: tower_<i>_* -> tower.<i>.block.*
        Rule(r"(tower|atac_tower)_(\d+)_conv/kernel", r"\1.\2.block.conv.weight", permute(2, 1, 0)),
        Rule(r"(tower|atac_tower)_(\d+)_conv/bias", r"\1.\2.block.conv.bias"),
        Rule(r"(tower|atac_tower)_(\d+)_bn/gamma", r"\1.\2.block.bn.weight"),
        Rule(r"(tower|atac_tower)_(\d+)_bn/beta", r"\1.\2.block.bn.bias"),
        Rule(r"(tower|atac_tower)_(\d+)_bn/moving_mean", r"\1.\2.block.bn.running_mean"),
        Rule(r"(tower|atac_tower)_(\d+)_bn/moving_variance", r"\1.\2.block.bn.running_var"),
        Rule(r"stem_pool/kernel", "stem_pool.logit.weight", transpose()),
        Rule(r"tower_(\d+)_pool/kernel", r"tower.\1.pool.logit.weight", transpose()),
        Rule(None, r".*num_batches_tracked", zeros),
        # motif activity and projection
        Rule(r"(motif_fc[12])/kernel", r"\1.weight", transpose()),
        Rule(r"(motif_fc[12])/bias", r"\1.bias"),
        Rule("projection/kernel", "projection.weight", transpose()),
        # transformer layers
        Rule(r"layer_(\d+)_ln/gamma", r"layers.\1.ln.weight"),
        Rule(r"layer_(\d+)_ln/beta", r"layers.\1.ln.bias"),
        Rule(r"layer_(\d+)_attention/(query|key|value|output)", r"layers.\1.attention.\2.weight", attention),
        Rule(r"layer_(\d+)_ffn_ln/gamma", r"layers.\1.ffn.ln.weight"),
        Rule(r"layer_(\d+)_ffn_ln/beta", r"layers.\1.ffn.ln.bias"),
        Rule(r"layer_(\d+)_ffn_(wide|narrow)/kernel", r"layers.\1.ffn.\2.weight", transpose()),
        Rule(r"layer_(\d+)_ffn_(wide|narrow)/bias", r"layers.\1.ffn.\2.bias"),
        Rule("final_ln/gamma", "final_ln.weight"),
        Rule("final_ln/beta", "final_ln.bias"),
        # the ATAC head and (fine-tuning) the expression head: <head>_* -> <head>.* / <head>_dense.*
        Rule(r"(head|rna_head)_conv/kernel", r"\1.conv.weight", permute(2, 1, 0)),
        Rule(r"(head|rna_head)_conv/bias", r"\1.conv.bias"),
        Rule(r"(head|rna_head)_bn/gamma", r"\1.bn.weight"),
        Rule(r"(head|rna_head)_bn/beta", r"\1.bn.bias"),
        Rule(r"(head|rna_head)_bn/moving_mean", r"\1.bn.running_mean"),
        Rule(r"(head|rna_head)_bn/moving_variance", r"\1.bn.running_var"),
        Rule(r"(head|rna_head)_dense/kernel", r"\1_dense.weight", transpose()),
        Rule(r"(head|rna_head)_dense/bias", r"\1_dense.bias"),
    ]
    return WeightMap(rules)
