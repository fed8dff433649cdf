"""D3 round trip checked by upstream's own code: our converter writes, upstream's loaders read.

    /tmp/d3rt/venv/bin/python benchmarks/d3_upstream_roundtrip.py \\
        --upstream /tmp/d3rt/upstream/train_n_sample --fixtures ../shared/upstream/d3

Run it with a Python where upstream's ``train_n_sample/`` imports (torch, numpy, omegaconf, einops); our
package is never imported in that process. For each upstream run folder under ``--fixtures``:

1. ``python -m tf2lightning.families.d3.checkpoint to-lightning`` and then ``to-original`` (a subprocess
   with ``--ours-python``, the project's venv) write ``<work>/<case>/run/checkpoints/checkpoint.pth``;
   ``hydra/config.yaml`` beside it is the one ``to-original`` writes (none: the case fails).
2. A copy of upstream's tree is set up the way the fixture's ``case.json`` says the fixture was made: the
   dataset's model file selected in ``model/__init__.py``; for Conv, the convolution section of
   ``SEDD.forward`` uncommented and the transformer section commented out (promoter's conv section
   completed with the input convolution and ``c``, as upstream's other two files have them); the
   hard-coded conv width ``n``, ``embed_dim`` and ``label_emb``'s input width set from the checkpoint's
   tensor shapes; ``self.embed`` commented out where the checkpoint has no ``embed.*``. ``flash_attn`` does
   not build without CUDA: a stand-in package provides only ``flash_attn_interface.
   flash_attn_varlen_qkvpacked_func`` (per-sequence ``F.scaled_dot_product_attention``, scale
   1/sqrt(head_dim), no dropout), and no ``flash_attn.layers``, so ``model/rotary.py`` takes its torch path.
3. In a fresh process on that tree (``_check``): upstream's ``load_model.load_model_local`` (strict model
   load, EMA copied in) with torch's default ``torch.load``; its score function on ``probe.npz``'s inputs
   against ``log_score_ema``; the raw weights (strict ``SEDD.load_state_dict``) against
   ``log_score_model``; then ``run_train``'s state (DDP over gloo, EMA, noise, AdamW over model + noise)
   and ``utils1.restore_checkpoint`` of our file and of the fixture's own checkpoint, compared tensor by
   tensor, and one training step of upstream's ``losses.get_step_fn`` from each (same seed and batch).
   Upstream's ``ExponentialMovingAverage.copy_to`` zips, so a short EMA list would pass it silently: the
   list's length is checked against the trainable parameters. Control: ``load_model_local`` on the
   fixture's own file in the same tree. 2 torch threads, as the fixtures were made.

``--trained`` also trains tiny models here (our ``D3Module`` on the synthetic data, a few Lightning steps,
in a subprocess with ``--ours-python``), converts their ``last.ckpt`` with ``to-original`` and checks them
the same way against our own module's outputs (no upstream reference exists for them).
Prints one row per case and exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL_FILES = {"deepstarr": "transformer", "mpra": "transformer_mpra", "promoter": "transformer_promoter"}
TOLERANCE = 1e-5  # relative to the reference's largest magnitude
TRAINED_CASES = [(d, a) for d in ("deepstarr", "mpra", "promoter") for a in ("Tran", "Conv")]

SHIM = '''"""Stand-in for flash_attn's varlen kernel on CPU (no CUDA build): per-sequence SDPA, fp32."""
import torch
import torch.nn.functional as F


def flash_attn_varlen_qkvpacked_func(qkv, cu_seqlens, max_seqlen, dropout_p=0.0, causal=False, **_):
    out = []
    bounds = cu_seqlens.tolist()
    for start, end in zip(bounds[:-1], bounds[1:]):
        q, k, v = (t.transpose(0, 1) for t in qkv[start:end].unbind(1))
        out.append(F.scaled_dot_product_attention(q, k, v, is_causal=causal).transpose(0, 1))
    return torch.cat(out)
'''


# ----------------------------------------------------------------------------------------------------
# Setting up upstream's tree (text edits of a copy, as the fixtures' case.json lists them)


def _sub_once(pattern: str, replacement: str, text: str, what: str) -> str:
    new, n = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    if n != 1:
        raise RuntimeError(f"upstream source: {what}: pattern {pattern!r} not found")
    return new


def _conv_forward(text: str) -> tuple[str, list[str]]:
    """Comment out ``SEDD.forward``'s transformer section, uncomment its convolution section."""
    lines = text.split("\n")
    start = max(
        i for i, line in enumerate(lines) if "def forward(self, indices, labels, train, sigma)" in line
    )
    conv = next(
        i for i in range(start, len(lines)) if lines[i].strip().startswith("# x = torch.nn.functional")
    )
    end = next(i for i in range(conv, len(lines)) if lines[i].strip().startswith("#---"))
    for i in range(start + 1, conv):
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("#"):
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            lines[i] = f"{indent}# {stripped}"
    for i in range(conv, end):
        lines[i] = re.sub(r"^(\s*)# ?", r"\1", lines[i], count=1)
    notes = ["conv_forward"]
    block = "\n".join(lines[conv:end])
    if "self.linear(" not in block:  # promoter: the input convolution and c are missing upstream
        at = next(i for i in range(conv, end) if lines[i].strip() == "out = x.permute(0, 2, 1)")
        indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
        lines[at + 1 : at + 1] = [
            f"{indent}out = self.act(self.linear(out))",
            f"{indent}c = F.silu(self.sigma_map(sigma))",
        ]
        notes.append("promoter_conv_forward_completed")
    return "\n".join(lines), notes


def setup_tree(
    upstream: Path, target: Path, dataset: str, arch: str, shapes: dict[str, list[int]]
) -> list[str]:
    """A patched copy of upstream's ``train_n_sample`` at ``target`` (plus ``_shim/``); returns the edits."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(upstream, target, ignore=shutil.ignore_patterns("exp_local", "*.ipynb", "__pycache__"))
    module = MODEL_FILES[dataset]
    (target / "model" / "__init__.py").write_text(f"from .{module} import SEDD\n")
    notes = [f"select_model_file={module}"]
    path = target / "model" / f"{module}.py"
    text = path.read_text()
    width, embed = shapes["linear.weight"][0], shapes["denses.0.dense.weight"][1]
    text = _sub_once(r"^(\s+)n = 256\b", rf"\g<1>n = {width}", text, "conv width")
    text = _sub_once(r"^(\s+)embed_dim = 256\b", rf"\g<1>embed_dim = {embed}", text, "embed_dim")
    notes.append(f"conv_width={width},embed_dim={embed}")
    if "label_emb.0.weight" in shapes:
        n_in = shapes["label_emb.0.weight"][1]
        text = _sub_once(
            r"^(\s+)nn\.Linear\(2, config\.model\.length\)",
            rf"\g<1>nn.Linear({n_in}, config.model.length)",
            text,
            "label_emb",
        )
        notes.append(f"label_emb_in={n_in}")
    if "embed.1.weight" not in shapes and re.search(r"^\s+self\.embed = ", text, re.MULTILINE):
        text = _sub_once(
            r"^(\s+)(self\.embed = nn\.Sequential\(.*\n)(\s+)(nn\.Linear\(embed_dim, embed_dim\)\))",
            r"\g<1># \g<2>\g<3># \g<4>",
            text,
            "self.embed",
        )
        notes.append("conv_drop_embed")
    if arch == "Conv":
        text, more = _conv_forward(text)
        notes += more
    ast.parse(text)
    path.write_text(text)
    shim = target / "_shim" / "flash_attn"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("")
    (shim / "flash_attn_interface.py").write_text(SHIM)
    notes.append("flash_attn_stand_in")
    return notes


# ----------------------------------------------------------------------------------------------------
# The check, in a fresh process on one patched tree (upstream's modules only)


def _rel_err(got: Any, want: Any) -> float:
    import numpy as np

    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def _run_state(cfg: Any) -> dict[str, Any]:
    """``run_train._run``'s state on CPU: DDP (gloo, world size 1), EMA, noise, AdamW over both."""
    from itertools import chain

    import graph_lib
    import losses
    import noise_lib
    import torch
    from model import SEDD
    from model.ema import ExponentialMovingAverage
    from torch.nn.parallel import DistributedDataParallel as DDP

    score_model = DDP(SEDD(cfg), static_graph=True, find_unused_parameters=True)
    ema = ExponentialMovingAverage(score_model.parameters(), decay=cfg.training.ema)
    noise = DDP(noise_lib.get_noise(cfg), static_graph=True)
    optimizer = losses.get_optimizer(cfg, chain(score_model.parameters(), noise.parameters()))
    scaler = torch.cuda.amp.GradScaler(enabled=False)
    state = dict(optimizer=optimizer, scaler=scaler, model=score_model, noise=noise, ema=ema, step=0)
    state["graph"] = graph_lib.get_graph(cfg, "cpu")
    return state


def _train_step(state: dict[str, Any], cfg: Any, x: Any, labels: Any) -> float:
    import losses
    import torch

    step_fn = losses.get_step_fn(
        state["noise"], state["graph"], True, losses.optimization_manager(cfg), cfg.training.accum
    )
    torch.manual_seed(0)
    return float(step_fn(state, x, labels))


def _state_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest absolute difference between two run states' weights, EMA and optimizer tensors."""
    ma, mb = a["model"].module.state_dict(), b["model"].module.state_dict()
    ea, eb = a["ema"].shadow_params, b["ema"].shadow_params
    sa, sb = a["optimizer"].state_dict(), b["optimizer"].state_dict()
    groups = [[len(g["params"]) for g in s["param_groups"]] for s in (sa, sb)]
    if ma.keys() != mb.keys() or len(ea) != len(eb) or sa["state"].keys() != sb["state"].keys():
        return float("inf")
    if groups[0] != groups[1]:
        return float("inf")
    pairs = [(ma[k], mb[k]) for k in ma] + list(zip(ea, eb, strict=True))
    for key in sa["state"]:
        pairs += [(sa["state"][key][n], sb["state"][key][n]) for n in ("exp_avg", "exp_avg_sq", "step")]
    diffs = [0.0]
    for x, y in pairs:
        if x.shape != y.shape:
            return float("inf")
        diffs.append(float((x.double() - y.double()).abs().max()) if x.numel() else 0.0)
    return max(diffs)


def check(tree: Path, run_dir: Path, probe_path: Path, original: Path | None) -> dict[str, Any]:
    """Upstream's loaders on ``run_dir`` (our converted run folder); returns the measured numbers."""
    sys.path[:0] = [str(tree), str(tree / "_shim")]
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    import load_model
    import numpy as np
    import torch
    import torch.distributed as dist
    import utils1
    from model import SEDD
    from model import utils as mutils

    torch.manual_seed(0)
    torch.set_num_threads(2)  # as the fixtures were made: Conv sums then match to the last bit
    out: dict[str, Any] = {}
    probe = dict(np.load(probe_path))
    x, labels, sigma = (torch.from_numpy(probe[k]) for k in ("x", "labels", "sigma"))
    ckpt = run_dir / "checkpoints" / "checkpoint.pth"

    # load_model_local: torch.load with torch's default (weights_only=True), strict load, EMA copied in
    model, _, _ = load_model.load_model_local(str(run_dir), "cpu")
    with torch.no_grad():
        ema_out = mutils.get_score_fn(model, train=False, sampling=False)(x, labels, sigma)
    out["ema_err"] = _rel_err(ema_out, probe["log_score_ema"])
    cfg = utils1.load_hydra_config_from_run(str(run_dir))
    raw = SEDD(cfg)
    loaded = torch.load(ckpt, map_location="cpu")
    raw.load_state_dict(loaded["model"])  # strict
    n_trainable = sum(p.requires_grad for p in raw.parameters())
    out["ema_list_ok"] = len(loaded["ema"]["shadow_params"]) == n_trainable
    with torch.no_grad():
        raw_out = mutils.get_score_fn(raw, train=False, sampling=False)(x, labels, sigma)
    out["model_err"] = _rel_err(raw_out, probe["log_score_model"])
    if original is not None:  # control: upstream's loader on the fixture's own file, in this same tree
        with tempfile.TemporaryDirectory() as control:
            (Path(control) / "checkpoints").mkdir()
            (Path(control) / "hydra").symlink_to(original.parent.parent / "hydra")
            (Path(control) / "checkpoints" / "checkpoint.pth").symlink_to(original)
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # the fixture's numpy.float64 lr
            control_model, _, _ = load_model.load_model_local(control, "cpu")
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
        with torch.no_grad():
            control_out = mutils.get_score_fn(control_model, train=False, sampling=False)(x, labels, sigma)
        out["control_ema_err"] = _rel_err(control_out, probe["log_score_ema"])

    # run_train's resume: restore_checkpoint (optimizer over model + noise, model with strict=False)
    handle, store = tempfile.mkstemp(prefix="d3rt_store_")
    os.close(handle)
    os.remove(store)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    ours = utils1.restore_checkpoint(str(ckpt), _run_state(cfg), "cpu")
    keys = set(ours["model"].module.state_dict())
    out["resume_keys_ok"] = keys == set(loaded["model"]) and ours["step"] == loaded["step"]
    if original is not None:
        os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # the fixture's numpy.float64 lr (see README)
        theirs = utils1.restore_checkpoint(str(original), _run_state(cfg), "cpu")
        os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
        out["resume_state_diff"] = _state_diff(ours, theirs)
        batch = (torch.from_numpy(probe["loss_x0"]), torch.from_numpy(probe["loss_labels"]))
        loss_ours, loss_theirs = _train_step(ours, cfg, *batch), _train_step(theirs, cfg, *batch)
        out["step_loss_diff"] = abs(loss_ours - loss_theirs)
        out["step_state_diff"] = _state_diff(ours, theirs)
    else:
        loss = _train_step(ours, cfg, x, labels)
        out["step_loss_diff"] = 0.0 if np.isfinite(loss) else float("inf")
    dist.destroy_process_group()
    return out


# ----------------------------------------------------------------------------------------------------
# Ours: conversion and a tiny training (subprocesses with the project's Python)


def convert(ours_python: str, direction: str, source: Path, target: Path) -> None:
    cmd = [ours_python, "-m", "tf2lightning.families.d3.checkpoint", direction, str(source), str(target)]
    subprocess.run(cmd, check=True, cwd=ROOT)


def train_here(out: Path, dataset: str, arch: str, overrides: str = "{}") -> None:
    """A tiny ``D3Module`` (uniform graph, geometric noise) trained 3 Lightning steps: ``last.ckpt`` and
    ``probe.npz`` (our module's outputs on probe inputs)."""
    import lightning as L
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from tf2lightning.families.d3.datasets import KINDS
    from tf2lightning.families.d3.lit import make_module
    from tf2lightning.families.d3.model import build, probe_inputs
    from tf2lightning.families.d3.synthetic import generate, signal_track
    from tf2lightning.run import Run

    sizes = {"hidden_size": 16, "cond_dim": 16, "n_blocks": 2, "n_heads": 2, "conv_width": 8, "dropout": 0.1}
    arch_cfg = {**sizes, "graph": "uniform", "noise": "geometric", "sigma_min": 1e-4, "sigma_max": 20.0}
    arch_cfg.update(json.loads(overrides))  # e.g. '{"kmer_kernel": 9}' (ours only: upstream cannot read it)
    train = {"lr": 1e-2, "warmup": 2, "ema_decay": 0.9, "gradient_clip": 1.0, "batch_size": 4}
    run = Run("d3", dataset, arch, arch=arch_cfg, train=train, seed=3, threads=1)
    torch.manual_seed(run.seed)
    kind = KINDS[dataset]
    planted = generate(kind, 8, np.random.default_rng(4))
    labels = signal_track(kind, planted)[..., None] if kind.layout == "promoter" else planted.activity
    rows = [
        {"seq": torch.from_numpy(planted.seqs[i]), "activity": torch.from_numpy(labels[i]).float()}
        for i in range(8)
    ]
    module = make_module(run, build(run))
    trainer = L.Trainer(
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=1.0,
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=DataLoader(rows, batch_size=4))
    if (out / "run").exists():
        shutil.rmtree(out / "run")
    out.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(out / "last.ckpt")
    probe = probe_inputs(run, 4, 11)
    inputs = [torch.from_numpy(probe[k]) for k in ("x", "labels", "sigma")]
    with torch.no_grad():
        probe["log_score_ema"] = module.ema.eval()(*inputs).numpy()
        probe["log_score_model"] = module.net.eval()(*inputs).numpy()
    np.savez(out / "probe.npz", **probe)


# ----------------------------------------------------------------------------------------------------


def _shapes(path: Path) -> dict[str, list[int]]:
    import torch

    # a local fixture or our own output; the fixtures' numpy.float64 lr needs the full unpickler
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = (
        state["model"]
        if "model" in state
        else {k.removeprefix("net."): v for k, v in state["state_dict"].items() if k.startswith("net.")}
    )
    return {k: list(v.shape) for k, v in model.items()}


def _dataset_of(run_dir: Path) -> str:
    text = (run_dir / "hydra" / "config.yaml").read_text()
    match = re.search(r"^\s+train:\s*(\w+)", text, re.MULTILINE)
    if not match or match.group(1) not in MODEL_FILES:
        raise RuntimeError(f"{run_dir}: data.train not one of {sorted(MODEL_FILES)}")
    return match.group(1)


def _run_check(tree: Path, run_dir: Path, probe: Path, original: Path | None) -> dict[str, Any]:
    args = [sys.executable, __file__, "_check", str(tree), str(run_dir), str(probe), str(original or "")]
    proc = subprocess.run(args, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail)}
    return json.loads(lines[-1])


def _verdict(result: dict[str, Any]) -> bool:
    if "error" in result:
        return False
    errors = [result[k] for k in ("ema_err", "model_err", "control_ema_err") if k in result]
    ok = all(e <= TOLERANCE for e in errors)
    ok = ok and result["ema_list_ok"] and result["resume_keys_ok"] and result["step_loss_diff"] <= 1e-6
    return ok and all(result.get(k, 0.0) <= 1e-7 for k in ("resume_state_diff", "step_state_diff"))


def _row(case: str, result: dict[str, Any]) -> str:
    if "error" in result:
        return f"| {case} | error: {result['error'][:150]} | | | | | | FAIL |"

    def num(key: str) -> str:
        return "-" if key not in result else f"{result[key]:.1e}"

    lists = "yes" if result["ema_list_ok"] and result["resume_keys_ok"] else "no"
    cells = [num("control_ema_err"), num("ema_err"), num("model_err"), lists]
    cells += [num("resume_state_diff"), num("step_state_diff")]
    return f"| {case} | " + " | ".join(cells) + f" | {'PASS' if _verdict(result) else 'FAIL'} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, required=True, help="upstream's train_n_sample/ tree")
    parser.add_argument("--fixtures", type=Path, required=True, help="folder of upstream run folders")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "d3_upstream_roundtrip")
    parser.add_argument("--ours-python", default=str(ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--trained", action="store_true", help="also check checkpoints trained here")
    parser.add_argument("--only", default="", help="only the cases whose name contains this")
    args = parser.parse_args(argv)
    cases = sorted(p for p in args.fixtures.iterdir() if (p / "hydra" / "config.yaml").is_file())
    rows, ok = [], True
    # case, arch, source (run folder or Lightning checkpoint), work folder, probe.npz, upstream's own file
    jobs: list[tuple[str, str, Path, Path, Path, Path | None]] = []
    for folder in cases:
        snapshots = sorted((folder / "checkpoints").glob("checkpoint*.pth"))
        arch = folder.name.rsplit("_", 1)[-1]
        if arch not in ("Tran", "Conv"):
            raise SystemExit(f"{folder}: expected a <dataset>_<Tran|Conv> run folder")
        jobs.append((folder.name, arch, folder, args.work / folder.name, folder / "probe.npz", snapshots[-1]))
    if args.trained:
        for dataset, arch in TRAINED_CASES:
            if args.only not in f"trained here: {dataset}_{arch}":
                continue
            work = args.work / f"trained_{dataset}_{arch}"
            subprocess.run(
                [args.ours_python, __file__, "_train", str(work), dataset, arch], check=True, cwd=ROOT
            )
            jobs.append(
                (f"trained here: {dataset}_{arch}", arch, work / "last.ckpt", work, work / "probe.npz", None)
            )
    for case, arch, source, work, probe, original in jobs:
        if args.only not in case:
            continue
        run_dir = work / "run"
        try:
            if original is not None:  # upstream run folder -> Lightning -> upstream layout
                if run_dir.exists():
                    shutil.rmtree(run_dir)
                convert(args.ours_python, "to-lightning", source, work / "lightning.ckpt")
                source = work / "lightning.ckpt"
            target = run_dir / "checkpoints" / "checkpoint.pth"
            target.parent.mkdir(parents=True, exist_ok=True)
            convert(args.ours_python, "to-original", source, target)
            if not (run_dir / "hydra" / "config.yaml").is_file():
                raise RuntimeError(
                    "to-original wrote no hydra/config.yaml: upstream's loaders cannot read the run"
                )
            dataset = _dataset_of(run_dir)
            shapes = _shapes(target)
            tree = args.work / "trees" / f"{dataset}_{arch}_{shapes['linear.weight'][0]}"
            notes = setup_tree(args.upstream, tree, dataset, arch, shapes)
            result = _run_check(tree, run_dir, probe, original)
            result["edits"] = notes
        except (subprocess.CalledProcessError, RuntimeError, OSError) as error:
            result = {"error": str(error)}
        ok &= _verdict(result)
        rows.append(_row(case, result))
        print(rows[-1], file=sys.stderr, flush=True)
    print(
        "| case | upstream's own file: log_score_ema err | ours: log_score_ema err "
        "| ours: log_score_model err | strict keys, EMA list | resume: state diff "
        "| after 1 step: state diff | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_check":
        tree_, run_, probe_, original_ = sys.argv[2:6]
        print(
            json.dumps(check(Path(tree_), Path(run_), Path(probe_), Path(original_) if original_ else None))
        )
    elif len(sys.argv) > 1 and sys.argv[1] == "_train":
        train_here(Path(sys.argv[2]), *sys.argv[3:6])
    else:
        sys.exit(main())
