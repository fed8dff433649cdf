"""Which Keras layer of the legacy model is which torch module of the port (no framework).

:func:`parity_layers` lists every compared layer for one run, in execution order, as
``keras name -> (torch module path, layout)``; ``layout`` is ``"channels_last"`` for torch
``(N, C, L)`` activations compared with Keras ``(N, L, C)`` ones, else ``"same"``.
"""

from __future__ import annotations

from tf2lightning.families.epibert.modes import HEAD_PREFIX, is_finetune
from tf2lightning.run import Run

Table = dict[str, tuple[str, str]]


def _conv_block(keras_prefix: str, torch_path: str) -> Table:
    return {
        f"{keras_prefix}_bn": (f"{torch_path}.bn", "channels_last"),
        f"{keras_prefix}_gelu": (f"{torch_path}.act", "channels_last"),
        f"{keras_prefix}_conv": (f"{torch_path}.conv", "channels_last"),
    }


def _stem(prefix: str) -> Table:
    return {
        f"{prefix}_conv": (f"{prefix}.conv", "channels_last"),
        **_conv_block(f"{prefix}_res", f"{prefix}.res.block"),
        f"{prefix}_res_add": (f"{prefix}.res", "channels_last"),
        f"{prefix}_pool": (f"{prefix}_pool", "channels_last"),
    }


def _tower(prefix: str, i: int) -> Table:
    return {
        **_conv_block(f"{prefix}_{i}", f"{prefix}.{i}.block"),
        f"{prefix}_{i}_pool": (f"{prefix}.{i}.pool", "channels_last"),
    }


def _transformer(i: int) -> Table:
    names = {
        "ln": "ln",
        "attention": "attention",
        "ffn_ln": "ffn.ln",
        "ffn_wide": "ffn.wide",
        "ffn_act": "ffn.act",
        "ffn_narrow": "ffn.narrow",
    }
    table = {f"layer_{i}_{k}": (f"layers.{i}.{v}", "same") for k, v in names.items()}
    table[f"layer_{i}_ffn_add"] = (f"layers.{i}", "same")
    return table


def _head(prefix: str) -> Table:
    return {
        **_conv_block(prefix, prefix),
        f"{prefix}_gelu2": (f"{prefix}_gelu2", "same"),
        f"{prefix}_dense": (f"{prefix}_dense", "same"),
        f"{prefix}_softplus": (f"{prefix}_softplus", "same"),
    }


def table(n_seq: int, n_atac: int, n_layers: int, finetune: bool = False) -> Table:
    """The full table for a model with these numbers of tower blocks and transformer layers (and the
    expression head when ``finetune``)."""
    out: Table = _stem("stem")
    for i in range(n_seq):
        out |= _tower("tower", i)
    out |= _stem("atac_stem")
    for i in range(n_atac):
        out |= _tower("atac_tower", i)
    out |= {
        "motif_fc1": ("motif_fc1", "same"),
        "motif_gelu": ("motif_gelu", "same"),
        "motif_fc2": ("motif_fc2", "same"),
        "projection": ("projection", "same"),
    }
    for i in range(n_layers):
        out |= _transformer(i)
    out |= {"final_ln": ("final_ln", "same"), **_head("head")}
    if finetune:
        out |= _head(HEAD_PREFIX)
    return out


def upstream_table(run: Run) -> Table:
    """The compared layers of upstream's model (``tf_upstream``, named by us; upstream's own names are
    not unique): stems, tower blocks, motif branch, each transformer layer, the heads."""
    arch, cl = run.arch, "channels_last"
    out: Table = {}
    for prefix in ("stem", "atac_stem"):
        out |= {f"{prefix}_conv": (f"{prefix}.conv", cl), f"{prefix}_res": (f"{prefix}.res", cl)}
        out[f"{prefix}_pool"] = (f"{prefix}_pool", cl)
        towers = arch["filter_list_seq"] if prefix == "stem" else arch["filter_list_atac"]
        tower = "tower" if prefix == "stem" else "atac_tower"
        out |= {f"{tower}_block_{i}": (f"{tower}.{i}", cl) for i in range(len(towers))}
    out |= {"motif_fc1": ("motif_gelu", "motif"), "motif_fc2": ("motif_fc2", "motif")}
    out["projection"] = ("projection", "same")
    out |= {f"layer_{i}": (f"layers.{i}", "same") for i in range(int(arch["num_layers"]))}
    out["final_ln"] = ("final_ln", "same")
    for prefix in ("head", HEAD_PREFIX) if is_finetune(arch) else ("head",):
        out |= {prefix: (prefix, cl), f"{prefix}_dense": (f"{prefix}_softplus", "same")}
    return out


def is_upstream(run: Run) -> bool:
    """The arch's legacy model is upstream's checkpoint folder (configured ``legacy_model``)."""
    return bool(run.arch.get("legacy_model"))


def parity_layers(run: Run) -> Table:
    """Every compared layer of ``run``'s architecture."""
    arch = run.arch
    if is_upstream(run):
        return upstream_table(run)
    return table(
        len(arch["filter_list_seq"]),
        len(arch["filter_list_atac"]),
        int(arch["num_layers"]),
        is_finetune(arch),
    )


# The layers every configuration has (one tower block and one transformer layer at least): the static
# table that the generic parity stage reads as ``model.PARITY_LAYERS``.
STATIC = table(1, 1, 1)
