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


def test_finetuning_has_upstreams_two_adamw_with_their_own_schedules_and_clips() -> None:
    """Upstream's fine-tuning: AdamW over the trunk (lr_base1) and AdamW over the heads (lr_base2), each
    with its own cos_w_warmup rate and global-norm clip; biases and norms without weight decay; without
    predict_atac the ATAC head is in neither and only the expression loss counts."""
    from dataclasses import replace

    from tests.test_epibert_family import FINETUNE
    from tf2lightning.families.epibert.lit import ExpressionFinetuning, make_module
    from tf2lightning.families.epibert.model import build
    from tf2lightning.families.epibert.modes import HEAD_PREFIX

    train = {"optimizer": "adamw", "weight_decay": 1e-4, "schedule": "cos_w_warmup", "warmup_steps": 2,
             "decay_steps": 4, "decay_frac": 0.05, "lr": 5e-4, "loss_type": "poisson"}  # fmt: skip
    run = replace(FINETUNE, train={**FINETUNE.train, **train}, arch={**FINETUNE.arch, "head_lr": 2e-3})
    torch.manual_seed(0)
    module = make_module(run, build(run))
    assert isinstance(module, ExpressionFinetuning) and module.predict_atac
    out = module.configure_optimizers()
    opt, scheduler = out["optimizer"], out["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.AdamW)
    names = {id(p): n for n, p in module.model.named_parameters()}
    seen = set()
    for group in opt.param_groups:
        heads = {names[id(p)].startswith(HEAD_PREFIX) for p in group["params"]}
        assert len(heads) == 1  # a group belongs to one of the two optimizers
        assert group["initial_lr"] == (2e-3 if heads.pop() else 5e-4)
        vectors = {p.ndim == 1 for p in group["params"]}  # biases and norm scales: all and only the 1-D
        assert len(vectors) == 1 and group["weight_decay"] == (0.0 if vectors.pop() else 1e-4)
        seen |= {names[id(p)] for p in group["params"]}
    assert seen == set(names.values())  # predict_atac: every variable trained
    for step in range(8):  # each optimizer's rate is its own base rate times upstream's factor
        factor = cos_w_warmup(step, 2, 4, 0.05)
        for group in opt.param_groups:
            assert group["lr"] == pytest.approx(group["initial_lr"] * factor)
        opt.step()
        scheduler.step()

    sets = module.optimizer_sets()
    for _, p in sets[0] + sets[1]:
        p.grad = torch.full_like(p, 3.0)
    module.configure_gradient_clipping(opt, 1.0, "norm")
    for named in sets:  # each optimizer's gradients clipped to global norm 1 on their own
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for _, p in named]))
        assert float(norm) == pytest.approx(1.0, rel=1e-5)

    off = make_module(replace(run, arch={**run.arch, "predict_atac": False}), build(run))
    trained = {n for group in off.optimizer_sets() for n, _ in group}
    atac_head = {n for n in names.values() if n.split(".")[0] in ("head", "head_dense")}
    assert atac_head and not trained & atac_head and trained | atac_head == set(names.values())
    batch = {
        "sequence": torch.randint(0, 4, (2, run.dataset["input_length"])),
        "atac": torch.rand(2, run.dataset["input_length"] // 4),
        "motif": torch.rand(2, run.dataset["n_motifs"]),
        "target": torch.rand(2, 28) * 3,
        "mask": (torch.rand(2, 28) < 0.5).float(),
        "rna": torch.rand(2, 28) * 3,
    }
    off.eval()
    loss, rna_loss, _, _ = off._losses(batch)
    assert float(loss) == float(rna_loss)

    import lightning as L

    head = off.model.head_dense.weight.detach().clone()
    trunk = off.model.projection.weight.detach().clone()
    trainer = L.Trainer(max_steps=2, gradient_clip_val=1.0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")  # fmt: skip
    trainer.fit(off, torch.utils.data.DataLoader([{k: v[0] for k, v in batch.items()}] * 2, batch_size=1))
    assert trainer.global_step == 2  # Lightning steps with the per-optimizer clipping
    assert torch.equal(off.model.head_dense.weight, head) and not torch.equal(
        off.model.projection.weight, trunk
    )


def test_early_stopping_takes_upstreams_patience_and_min_delta() -> None:
    """Upstream's rule (``training_utils.early_stopping``): an epoch counts toward patience unless its
    val_loss is below the minimum of all earlier ones by more than min_delta; patience such epochs stop."""
    from tf2lightning.run import Run
    from tf2lightning.stages.train import early_stopping

    run = Run(family="epibert", dataset_name="d", arch_name="a", train={"patience": 3, "min_delta": 5e-7})
    stopping = early_stopping(run)
    assert stopping is not None and stopping.patience == 3 and abs(stopping.min_delta) == 5e-7
    losses = [1.0, 0.5, 0.5 - 4e-7, 0.5 - 8e-7, 0.5 - 12e-7]

    def upstream(history: list[float]) -> list[bool]:  # its loop, epoch by epoch
        counter, stops = 0, []
        for i, loss in enumerate(history):
            best = min(history[:i]) if i else loss
            counter = counter + 1 if loss >= best - 5e-7 else 0
            stops.append(counter >= 3)
        return stops

    stops = [stopping._evaluate_stopping_criteria(torch.tensor(x, dtype=torch.float64))[0] for x in losses]
    # each of the last three is within min_delta of the one before: three epochs without progress
    # (Lightning's own rule compares with 0.5, calls 0.5 - 8e-7 progress and would go on)
    assert stops == upstream(losses) == [False, False, False, False, True]
    assert early_stopping(Run(family="epibert", dataset_name="d", arch_name="a", train={})) is None
