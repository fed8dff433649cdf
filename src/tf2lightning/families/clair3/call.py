"""``tf2lightning clair3 call``: batch inference like Clair3's CallVariants, streamed.

Reads candidate tensors from ``data.h5`` (the run's field; ``--split`` to keep one split) or a Clair3
``.bin`` (``position_matrix``) in slices of ``--batch-size`` rows, runs the trained model (``model.pt``,
native) or its TorchScript export (``.ts``) on CPU or GPU, and writes one TSV row per site as each batch is
done: the position, the call of each head with its probability, and (``--probabilities``) every class
probability. Memory stays at one batch whatever the file size.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import h5py
import numpy as np
import torch
from torch import nn

from tf2lightning.core.hdf5_store import iter_batches, read_attrs
from tf2lightning.errors import ConfigError, FormatError
from tf2lightning.families.clair3.labels import HEADS
from tf2lightning.families.clair3.platform import TENSOR_FIELD

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_callable(model_path: Path, device: torch.device) -> tuple[nn.Module, str | None]:
    """The model (eval mode, on ``device``) and its network (``P``/``F``; None for TorchScript)."""
    if model_path.suffix in (".ts", ".pt2", ".jit"):
        return torch.jit.load(str(model_path), map_location=device).eval(), None
    from tf2lightning.families.clair3.platform import network_of
    from tf2lightning.run import run_from_dict
    from tf2lightning.stages.train import load_model, read_saved_config

    run = run_from_dict(read_saved_config(model_path))
    model, _ = load_model(run, model_path)
    return model.to(device).eval(), network_of(run)


def input_group(path: Path, network: str | None) -> str:
    """Where the arrays are: ``""`` (the root) in a Clair3 bin, the network's group in ``data.h5``."""
    with h5py.File(path, "r") as h5:
        if "position_matrix" in h5:
            return ""
        if network is None:
            raise ConfigError(f"{path}: an HDF5 table needs --network P or F with a TorchScript model")
        group = TENSOR_FIELD[network]
        if f"{group}/position_matrix" not in h5:
            raise FormatError(f"{path}: no dataset '{group}/position_matrix' for network {network}")
        return group


def iter_sites(path: Path, group: str, batch_size: int, split: str | None) -> Iterator[dict[str, np.ndarray]]:
    """Batches of ``{"x", "position"}`` (positions as a vector) streamed from the file, optionally only
    the rows of ``split``."""
    prefix = f"{group}/" if group else ""
    keys = {"x": f"{prefix}position_matrix", "position": f"{prefix}position"}
    split_id = None
    if split is not None:
        names = read_attrs(path).get("splits") or []
        if split not in names:
            raise FormatError(f"{path}: no split {split!r}; splits are {names}")
        split_id, keys["split"] = names.index(split), f"{prefix}split"
    for raw in iter_batches(path, batch_size, tuple(keys.values())):
        batch = {name: raw[key] for name, key in keys.items()}
        batch["position"] = batch["position"].reshape(-1)  # upstream's bins store (N, 1)
        if split_id is not None:
            keep = batch.pop("split") == split_id
            batch = {k: v[keep] for k, v in batch.items()}
        if len(batch["position"]):
            yield batch


def predict_batch(model: nn.Module, x: np.ndarray, device: torch.device, precision: str) -> list[np.ndarray]:
    """Per-head probabilities (float32) of one batch under the requested autocast precision."""
    tensor = torch.from_numpy(np.ascontiguousarray(x)).to(device).float()
    dtype = PRECISIONS[precision]
    autocast = (
        torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    )
    try:
        with torch.inference_mode(), autocast:
            outputs = model(tensor)
    except RuntimeError as error:
        if dtype == torch.float32:
            raise
        raise ConfigError(
            f"--precision {precision} is not supported by this model on {device}: {error}"
        ) from None
    return [t.float().softmax(-1).cpu().numpy() for t in outputs]


def header(probabilities: bool, heads: int = len(HEADS)) -> list[str]:
    """The TSV columns for a model with the first ``heads`` of ``HEADS`` (4, or 2 for pileup models)."""
    names = list(HEADS)[:heads]
    columns = ["position"]
    for name in names:
        columns += [name, f"p_{name}"]
    if probabilities:
        columns += [f"p_{name}_{label}" for name in names for label in HEADS[name]]
    return columns


def format_rows(positions: np.ndarray, probs: list[np.ndarray], probabilities: bool) -> Iterator[str]:
    """One TSV line per site: calls (class name and its probability), then optionally all classes."""
    for row, position in enumerate(positions):
        cells = [position.decode() if isinstance(position, bytes) else str(position)]
        for labels, p in zip(HEADS.values(), probs, strict=False):  # 2 or 4 heads
            best = int(p[row].argmax())
            cells += [labels[best], f"{p[row, best]:.6g}"]
        if probabilities:
            cells += [f"{v:.6g}" for p in probs for v in p[row]]
        yield "\t".join(cells)


def call(
    model_path: Path,
    input_path: Path,
    out: TextIO,
    *,
    batch_size: int = 256,
    precision: str = "fp32",
    device: str = "cpu",
    network: str | None = None,
    split: str | None = None,
    probabilities: bool = False,
) -> int:
    """Stream calls for every site of ``input_path`` to ``out``; return the number of sites."""
    target = torch.device(device)
    model, saved_network = load_callable(model_path, target)
    group = input_group(input_path, network or saved_network)
    n = 0
    for batch in iter_sites(input_path, group, batch_size, split):
        probs = predict_batch(model, batch["x"], target, precision)
        if n == 0:
            print("\t".join(header(probabilities, len(probs))), file=out)
        for line in format_rows(batch["position"], probs, probabilities):
            print(line, file=out)
        n += len(batch["position"])
    if n == 0:  # no sites: the header alone (the model's head count is unknown without a batch)
        print("\t".join(header(probabilities)), file=out)
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tf2lightning clair3 call", description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="model.pt (train stage) or model.ts (TorchScript export)")
    parser.add_argument("input", type=Path, help="data.h5 or a Clair3 .bin")
    parser.add_argument("-o", "--output", default="-", help="TSV path ('-': stdout)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--network", choices=tuple(TENSOR_FIELD), help="needed for .ts models on data.h5")
    parser.add_argument("--split", help="only the rows of this split of data.h5 (e.g. test)")
    parser.add_argument("--probabilities", action="store_true", help="also write every class probability")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tf2lightning clair3 call``."""
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    torch.set_num_threads(args.threads)
    options = dict(
        batch_size=args.batch_size,
        precision=args.precision,
        device=args.device,
        network=args.network,
        split=args.split,
        probabilities=args.probabilities,
    )
    if args.output == "-":
        n = call(args.model, args.input, sys.stdout, **options)
    else:
        from tf2lightning.core.atomic import atomic_path

        with atomic_path(args.output) as tmp, open(tmp, "w") as handle:
            n = call(args.model, args.input, handle, **options)
    print(f"called {n} sites", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
