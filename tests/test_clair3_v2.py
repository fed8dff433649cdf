"""``tf2lightning clair3 export-v2`` against what Clair3 v2's own converter wrote from the same upstream
checkpoints (``../shared/upstream/clair3/v2``): names, shapes, dtypes, order and values, tensor for tensor,
without TensorFlow; and the warning where v2's symmetric padding is wrong (depth 55)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from tests.upstream_fixtures import upstream_dir
from tf2lightning.families.clair3.v2 import export_v2, padding_warning, stride2_sizes

CASES = [("released_ont", 89), ("released_hifi", 55)]


@pytest.mark.parametrize(("case", "depth"), CASES)
def test_export_v2_equals_v2s_own_converter(tmp_path: Path, case: str, depth: int) -> None:
    names = json.loads(upstream_dir("clair3", "v2", "names.json").read_text())
    for network, kind in (("P", "pileup"), ("F", "full_alignment")):
        out = tmp_path / f"{kind}.pt"
        warning = export_v2(upstream_dir("clair3", case), network, depth, out)
        assert (warning is not None) == (network == "F" and depth == 55)
        got = torch.load(out)
        want = load_file(str(upstream_dir("clair3", "v2", f"{case}_{kind}.safetensors")))
        assert [[k, list(v.shape)] for k, v in got.items()] == names[f"{case}_{kind}"]  # names, shapes, order
        for key, value in want.items():
            assert got[key].numpy().dtype == value.dtype and np.array_equal(got[key].numpy(), value), key


def test_export_v2_command_runs_without_tensorflow_and_warns_at_depth_55(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
        "from tf2lightning.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    out = tmp_path / "full_alignment.safetensors"
    args = ["clair3", "export-v2", str(upstream_dir("clair3", "released_hifi")), str(out), "--network", "F"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args, "--depth", "55"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: at depth 55" in proc.stderr and "28x17, 14x9" in proc.stderr
    want = load_file(str(upstream_dir("clair3", "v2", "released_hifi_full_alignment.safetensors")))
    got = load_file(str(out))
    assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)


def test_padding_warning_only_where_a_stride2_input_is_even() -> None:
    assert stride2_sizes(55) == [(55, 33), (28, 17), (14, 9)]
    assert stride2_sizes(89) == [(89, 33), (45, 17), (23, 9)]
    assert padding_warning(89) is None
    warning = padding_warning(55)
    assert warning is not None and "28x17, 14x9" in warning and "NOT reproduce" in warning
