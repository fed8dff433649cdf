"""Model FLOPs counting and MFU (tf2lightning.bench.flops)."""

from __future__ import annotations

import pytest
import torch

from tf2lightning.bench.flops import count_flops, peak_flops, utilisation


def test_linear_forward_and_backward_flops() -> None:
    layer = torch.nn.Linear(16, 8, bias=False)
    x = torch.randn(4, 16, requires_grad=True)
    assert count_flops(lambda: layer(x)) == 2 * 4 * 16 * 8
    # backward: gradient of the input and of the weight, one matmul each
    assert count_flops(lambda: layer(x).sum().backward()) == 3 * 2 * 4 * 16 * 8


def test_attention_flops_grow_with_sequence_squared() -> None:
    def attention(length: int) -> int:
        q = torch.randn(1, 2, length, 8)
        return count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q))

    assert attention(64) == 4 * attention(32)


def test_no_peak_on_cpu_and_utilisation() -> None:
    assert peak_flops(torch.device("cpu"), torch.bfloat16) is None
    assert utilisation(1e12, 1.0, None) is None
    assert utilisation(1e12, 2.0, 1e12) == pytest.approx(0.5)
