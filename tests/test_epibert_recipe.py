"""Upstream's training recipe as options: the cos_w_warmup schedule, Adam without weight decay, the
``poisson`` loss (torch only)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tf2lightning.families.epibert.loss import masked_loss, poisson
from tf2lightning.families.epibert.recipe import Recipe, configure, cos_w_warmup


def test_cos_w_warmup_is_upstreams_shape() -> None:
    warm, decay, frac = 100, 1000, 0.1
    assert cos_w_warmup(0, warm, decay, frac) == pytest.approx(1e-3)  # 0.1 % of the base rate
    assert cos_w_warmup(50, warm, decay, frac) == pytest.approx(1e-3 + 0.5 * (1 - 1e-3))
    assert cos_w_warmup(warm, warm, decay, frac) == pytest.approx(1.0)
    assert cos_w_warmup(warm + decay // 2, warm, decay, frac) == pytest.approx(0.55)
    assert cos_w_warmup(warm + decay, warm, decay, frac) == pytest.approx(frac)
    assert cos_w_warmup(warm + 5 * decay, warm, decay, frac) == pytest.approx(frac)  # flat after


def test_upstream_optimizer_and_schedule_step_by_step() -> None:
    param = torch.nn.Parameter(torch.ones(3))
    train = {
        "optimizer": "adam",
        "schedule": "cos_w_warmup",
        "warmup_steps": 4,
        "decay_steps": 8,
        "epsilon": 1e-8,
    }
    recipe = Recipe.from_train(train)
    assert recipe.optimizer == "adam" and recipe.warmup_steps == 4
    out = configure(recipe, [{"params": [param]}], lr=1e-4)
    opt, scheduler = out["optimizer"], out["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.Adam) and not isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["weight_decay"] == 0 and opt.param_groups[0]["eps"] == 1e-8
    assert out["lr_scheduler"]["interval"] == "step"
    rates = []
    for _ in range(14):
        rates.append(opt.param_groups[0]["lr"])
        param.grad = torch.ones(3)
        opt.step()
        scheduler.step()
    assert (
        rates[0] == pytest.approx(1e-7)
        and rates[4] == pytest.approx(1e-4)
        and rates[12] == pytest.approx(1e-5)
    )
    assert isinstance(configure(Recipe(), [{"params": [param]}], 1e-3), torch.optim.AdamW)  # the default


def test_poisson_is_keras_poisson_on_the_masked_bins() -> None:
    g = torch.Generator().manual_seed(0)
    target, pred = torch.rand(2, 10, generator=g) * 5, torch.rand(2, 10, generator=g) + 0.1
    mask = torch.zeros(2, 10)
    mask[:, 3:6] = 1
    expected = F.poisson_nll_loss(pred[:, 3:6], target[:, 3:6], log_input=False, eps=1e-7)
    torch.testing.assert_close(masked_loss(target, pred, mask, loss_type="poisson"), expected)
    torch.testing.assert_close(
        poisson(target, pred), F.poisson_nll_loss(pred, target, log_input=False, eps=1e-7)
    )


def test_corrupt_rate_and_motif_noise_are_training_draws_only() -> None:
    import dataclasses

    import numpy as np

    from tf2lightning.families.epibert.augment import augment
    from tf2lightning.families.epibert.draws import draw
    from tf2lightning.families.epibert.geometry import Geometry

    geo = Geometry(
        input_length=1024, max_shift=2, atac_bin=4, n_tokens=32, crop=2, mask_bins=2, n_motifs=8,
        corrupt_rate=20, motif_noise=1e-4,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    corrupt = [draw(rng, geo, training=True)["corrupt"] for _ in range(4000)]
    assert abs(np.mean(corrupt) - 1 / 20) < 0.015  # one example in 20, as upstream's atac_corrupt_rate
    evaluation = draw(np.random.default_rng(1), geo)
    assert evaluation["corrupt"] == 0 and not evaluation["motif_noise"].any()
    off = dataclasses.replace(geo, corrupt_rate=None, motif_noise=0.0)
    plain = draw(np.random.default_rng(1), off, training=True)  # nothing extra drawn when off
    np.testing.assert_array_equal(plain["block_u"], evaluation["block_u"])

    example = {
        "sequence": np.zeros(geo.stored_length, np.uint8),
        "atac": np.ones(geo.atac_length, np.float16),
        "peaks_center": np.zeros(geo.n_tokens, np.int32),
        "motif_activity": np.linspace(0, 1, geo.n_motifs, dtype=np.float32),
    }
    drawn = draw(np.random.default_rng(2), geo, training=True)
    drawn["block_u"] = np.full_like(drawn["block_u"], 0.3)  # masked only at a tripled rate of 0.15
    drawn["corrupt"] = 0
    assert augment(example, drawn, geo, 0.15)["mask"].sum() == 0
    drawn["corrupt"] = 1
    out = augment(example, drawn, geo, 0.15)
    assert out["mask"].sum() == out["mask"].numel()
    motif = torch.from_numpy(example["motif_activity"]) + torch.from_numpy(drawn["motif_noise"])
    torch.testing.assert_close(out["motif"], motif, atol=1e-7, rtol=0)
