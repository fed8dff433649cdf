"""D3 exports: TorchScript and ONNX of both score networks, three inputs, dynamic batch (torch only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from tf2lightning.core.torch_weights import save_safetensors
from tf2lightning.families.d3.model import build, example_inputs, probe_inputs
from tf2lightning.run import Run
from tf2lightning.stages.weights import export_model


@pytest.mark.parametrize("arch", ["Tran", "Conv"])
def test_exports_match_eager_at_another_batch_size(tmp_path: Path, arch: str) -> None:
    sizes = {"hidden_size": 8, "cond_dim": 8, "n_blocks": 2, "n_heads": 2, "conv_width": 8}
    run = Run("d3", "mpra", arch, arch=sizes, seed=3, threads=1)
    torch.manual_seed(0)
    model = build(run)
    with torch.no_grad():  # adaLN-Zero starts at the identity: perturb so every layer matters
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    save_safetensors({k: v.numpy() for k, v in model.state_dict().items()}, tmp_path / "w.safetensors")
    export_model(run, tmp_path / "w.safetensors", tmp_path / "model.ts", tmp_path / "model.onnx")

    assert len(example_inputs(run)[0]) == 2  # exported at batch 2, checked below at batch 5
    arrays = probe_inputs(run, 5, seed=11)
    inputs = [torch.from_numpy(a) for a in arrays.values()]
    with torch.no_grad():
        expected = model.eval()(*inputs).numpy()
        scripted = torch.jit.load(str(tmp_path / "model.ts"))(*inputs).numpy()
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {node.name: a for node, a in zip(session.get_inputs(), arrays.values(), strict=True)}
    (onnx_out,) = session.run(None, feeds)
    assert expected.shape == (5, 200, 4)
    np.testing.assert_allclose(scripted, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(onnx_out, expected, atol=1e-5, rtol=0)
