"""``tf2lightning clair3 export-v2``: an upstream TF-era Clair3 model -> the state dict Clair3 v2 loads.

Clair3 v2 (HKU-BAL/Clair3 ``clair3/model.py`` at HEAD) names its modules after the Keras attributes
(``LSTM1``, ``conv1.conv``, ``res_block1.0.bn1``, ``L4``, ``L5_1``, ``Y_gt21_logits``) and loads
``<pileup|full_alignment>.pt`` (``torch.save`` of the state dict). The weights come through our own reader
and weight map (no TensorFlow; every checkpoint tensor accounted for), so they equal our port's tensor for
tensor; only the names and the order change (:data:`TABLE`).

v2's ``Clair3_F`` pads every stride-2 convolution by 1 on each side. TF 'same' pads (0, 1) where the input
height or width is even, so at such depths (e.g. 55: heights 28 and 14) v2's outputs differ from the TF
model's, whatever the weights: :func:`padding_warning` says so.
"""

from __future__ import annotations

import argparse
import sys
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch

from tf2lightning.core.atomic import atomic_path
from tf2lightning.families.clair3.model import same_padding
from tf2lightning.run import Run

_HEAD_NAMES = ("Y_gt21_logits", "Y_genotype_logits", "Y_indel_length_logits_1", "Y_indel_length_logits_2")
_LSTM = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
_LSTM_KEYS = (*_LSTM, *(f"{k}_reverse" for k in _LSTM))
_CONV_BN = (
    *(f"conv.{k}" for k in ("weight", "bias")),
    *(f"bn.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")),
)
_BLOCK = tuple(
    f"{layer}.{k}"
    for conv, bn in (("conv1", "bn1"), ("conv2", "bn2"))
    for layer, keys in (
        (conv, ("weight", "bias")),
        (bn, ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")),
    )
    for k in keys
)


def _dense(v2: str, ours: str) -> list[tuple[str, str]]:
    return [(f"{v2}.{k}", f"{ours}.{k}") for k in ("weight", "bias")]


def table(network: str, heads: int) -> list[tuple[str, str]]:
    """``(v2 key, our key)`` for every entry of v2's state dict, in v2's order."""
    if network == "P":
        trunk = [
            (f"{v2}.{k}", f"{ours}.{k}")
            for v2, ours in (("LSTM1", "lstm1"), ("LSTM2", "lstm2"))
            for k in _LSTM_KEYS
        ]
    else:
        trunk = []
        for stage, block in (("conv1", "res_block1"), ("conv3", "res_block2"), ("conv5", "res_block3")):
            trunk += [(f"{stage}.{k}", f"{stage}.{k}") for k in _CONV_BN]
            trunk += [(f"{block}.0.{k}", f"{block}.0.{k}") for k in _BLOCK]
    # v2 declares L4, then L5_1, L5_2 and the gt21 and genotype heads, then the indel-length ones.
    dense = _dense("L4", "heads.l4")
    for group in [(0, 1)] + ([(2, 3)] if heads == 4 else []):
        dense += [kv for k in group for kv in _dense(f"L5_{k + 1}", f"heads.l5.{k}")]
        dense += [kv for k in group for kv in _dense(_HEAD_NAMES[k], f"heads.y.{k}")]
    return trunk + dense


def v2_state_dict(port: torch.nn.Module, network: str) -> OrderedDict[str, torch.Tensor]:
    """Our port's tensors under v2's names, in v2's order (every tensor of the port used once)."""
    ours = port.state_dict()
    heads = len(port.heads.y)
    pairs = table(network, heads)
    unused = sorted(set(ours) - {o for _, o in pairs})
    if unused:
        raise ValueError(f"Clair3 v2 has no place for {unused}")
    return OrderedDict((v2, ours[o].detach().clone().contiguous()) for v2, o in pairs)


def stride2_sizes(depth: int, positions: int = 33) -> list[tuple[int, int]]:
    """Input ``(height, width)`` of Clair3_F's three stride-2 convolutions."""
    sizes, height, width = [], depth, positions
    for _ in range(3):
        sizes.append((height, width))
        height, width = -(-height // 2), -(-width // 2)
    return sizes


def padding_warning(depth: int, positions: int = 33) -> str | None:
    """A plain warning when v2's symmetric padding differs from TF's at this depth, else None."""
    sizes = stride2_sizes(depth, positions)
    uneven = [
        f"{h}x{w}" for h, w in sizes if same_padding(h, 3, 2) != (1, 1) or same_padding(w, 3, 2) != (1, 1)
    ]
    if not uneven:
        return None
    seen = ", ".join(f"{h}x{w}" for h, w in sizes)
    return (
        f"WARNING: at depth {depth} the stride-2 convolutions of Clair3_F see inputs {seen}; where a size "
        f"is even ({', '.join(uneven)}) TensorFlow pads 0 before and 1 after, but Clair3 v2's Clair3_F pads "
        "1 on each side, so v2 run with these (correct) weights will NOT reproduce the TF model's outputs "
        "(on upstream's depth-55 fixtures it is off by up to 0.66). Our port (tf2lightning) pads like TF."
    )


def export_v2(model: Path, network: str, depth: int, out: Path) -> str | None:
    """Write the v2 state dict of ``model`` (our reader, map and checks) to ``out``: ``torch.save`` of an
    ordered state dict (v2 loads ``<name>.pt``), or safetensors when ``out`` ends in ``.safetensors``.
    Returns the padding warning, if any."""
    from tf2lightning.core.torch_weights import load_mapped, save_safetensors, target_spec
    from tf2lightning.families.clair3 import model as clair3_model
    from tf2lightning.families.clair3 import weights

    run = Run(
        "clair3", f"depth{depth}", network, {"depth": depth}, {"network": network, "legacy_model": str(model)}
    )
    port = clair3_model.build(run)
    arrays = weights.weight_map(run).apply(weights.read_source(run, Path(model)), target_spec(port))
    state = v2_state_dict(load_mapped(port, arrays), network)
    with atomic_path(out) as tmp:
        if Path(out).suffix == ".safetensors":
            save_safetensors(
                {k: v.numpy() for k, v in state.items()}, tmp, metadata={"order": ",".join(state)}
            )
        else:
            torch.save(state, tmp)
    return padding_warning(depth) if network == "F" else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tf2lightning clair3 export-v2``."""
    parser = argparse.ArgumentParser(
        prog="tf2lightning clair3 export-v2", description=__doc__.split("\n")[0].split(": ", 1)[1]
    )
    parser.add_argument(
        "model",
        type=Path,
        help="a released model folder, a checkpoint prefix or a Train.py SavedModel folder",
    )
    parser.add_argument("out", type=Path, help="output .pt (what Clair3 v2 loads) or .safetensors")
    parser.add_argument("--network", choices=("P", "F"), required=True, help="P: pileup, F: full alignment")
    parser.add_argument(
        "--depth", type=int, default=89, help="full-alignment rows (ONT 89, HiFi/Illumina 55)"
    )
    args = parser.parse_args(argv)
    warning = export_v2(args.model, args.network, args.depth, args.out)
    if warning:
        print(warning, file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
