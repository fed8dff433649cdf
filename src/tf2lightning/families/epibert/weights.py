"""Keras variable names of the legacy EpiBERT -> ``state_dict`` keys of ``model.EpiBERT`` (no framework).

Source names are canonical ``<layer>/<variable>`` names (``model.h5`` and ``ckpt/`` give the same ones).
Conv1D kernels ``(k, in, out)`` -> ``permute(2, 1, 0)``; Dense kernels transpose; attention ``DenseEinsum``
kernels ``(d, heads, head_dim)`` -> ``reshape(d, d).T`` and the output ``(heads, head_dim, d)`` ->
``reshape(d, d).T``; BatchNorm keeps its moving statistics (``num_batches_tracked`` is zero).
"""

from __future__ import annotations

from tf2lightning.core.weight_map import Rule, WeightMap, chain, permute, reshape, transpose, zeros
from tf2lightning.run import Run


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
