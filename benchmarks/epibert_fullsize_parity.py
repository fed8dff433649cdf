"""Full-size EpiBERT parity (524,288 bp, 4,096 tokens, 8 layers, d=1024) on CPU, batch 1, in fp32.

    python benchmarks/epibert_fullsize_parity.py --out results/epibert/fullsize_parity.tsv [--workdir DIR]

A TF child builds the published-size Keras model (random weights, perturbed BatchNorm statistics), saves
``model.h5`` and runs one random example, writing the output and selected layers to ``reference.h5``;
a torch child converts ``model.h5`` with the family's weight map, runs the port and writes the parity
TSV (atol 1e-5). Needs about 12 GB of memory and several minutes per side on 2 cores; prints timings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tf2lightning.families.epibert.published import published_run
from tf2lightning.run import run_to_dict

LAYERS = [
    "stem_res_add", "stem_pool", "tower_0_pool", "tower_5_pool", "atac_stem_pool", "atac_tower_1_pool",
    "motif_fc2", "projection", "layer_0_attention", "layer_0_ffn_add", "layer_7_ffn_add", "final_ln",
    "head_conv", "head_softplus",
]  # fmt: skip

TF_CODE = """
import json, sys
import numpy as np, keras
from pathlib import Path
from tf2lightning.run import Run
from tf2lightning.families.epibert import legacy
from tf2lightning.families.epibert.geometry import geometry
from tf2lightning.tfside.reference import write_reference
from tf2lightning.tfside.saving import save_keras_h5
run, root, layers = Run(**json.loads(sys.argv[1])), Path(sys.argv[2]), json.loads(sys.argv[3])
keras.utils.set_random_seed(0)
geo, model = geometry(run), legacy.build_keras_model(run)
rng = np.random.default_rng(0)
for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
        c = layer.moving_mean.shape[0]
        layer.moving_mean.assign(rng.normal(0, 0.1, c).astype("float32"))
        layer.moving_variance.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
save_keras_h5(model, root / "model.h5")
codes = rng.integers(0, 4, geo.input_length)
inputs = {
    "sequence": np.eye(4, dtype="float32")[codes][None],
    "atac": rng.poisson(0.3, (1, geo.atac_length, 1)).astype("float32"),
    "motif_activity": rng.uniform(0, 1, (1, geo.n_motifs)).astype("float32"),
}
write_reference(model, inputs, root / "reference.h5", layers)
"""

TORCH_CODE = """
import json, sys
import torch
from pathlib import Path
from tf2lightning.run import Run
from tf2lightning.core.keras_h5 import read_keras_h5
from tf2lightning.core.parity import capture_activations, compare, parity_table
from tf2lightning.core.reference_file import read_reference
from tf2lightning.core.torch_weights import load_mapped, target_spec
from tf2lightning.families.epibert import model, weights
run, root = Run(**json.loads(sys.argv[1])), Path(sys.argv[2])
layers, out = json.loads(sys.argv[3]), sys.argv[4]
torch.set_num_threads(int(sys.argv[5]))
port = model.build(run)
load_mapped(port, weights.weight_map(run).apply(read_keras_h5(root / "model.h5"), target_spec(port)))
reference = read_reference(root / "reference.h5")
table = parity_table({k: v for k, v in model.parity_layers(run).items() if k in layers})
paths = {k: v.torch_path for k, v in table.items()}
outputs, acts = capture_activations(port, paths, model.parity_inputs(reference.inputs))
report = compare(reference, {"profile": outputs}, acts, table, atol=1e-5, rtol=0)
report.write_tsv(out, "h5")
print(report.summary())
"""


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, text=True, capture_output=True)
    if proc.returncode:
        raise SystemExit(f"{cmd[2][:40]!r}... failed:\n{proc.stderr[-3000:]}")
    print(proc.stdout.strip())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="parity TSV to write")
    parser.add_argument("--workdir", default=None, help="keep model.h5 and reference.h5 here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="epibert_fullsize_"))
    root.mkdir(parents=True, exist_ok=True)
    run, layers = json.dumps(run_to_dict(published_run())), json.dumps(LAYERS)
    tf_seconds = timed([sys.executable, "-c", TF_CODE, run, str(root), layers])
    torch_seconds = timed(
        [sys.executable, "-c", TORCH_CODE, run, str(root), layers, args.out, str(args.threads)]
    )
    print(
        f"TF side (build, save, reference): {tf_seconds:.0f} s; "
        f"torch side (convert, forward): {torch_seconds:.0f} s"
    )
    print(f"parity table: {args.out}")


if __name__ == "__main__":
    main()
