"""A training job killed with SIGKILL after its first checkpoint resumes from it on the rerun.

The tiny DGA data set is built with Snakemake (local executor); training runs in child processes, the
first killed for real once ``checkpoints/last.ckpt`` exists, the second run to the end.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tf2lightning.core.tsv import read_tsv

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "dga_tiny.yaml"
MAX_EPOCHS = 4

TRAIN_CHILD = """
import logging, sys
from tf2lightning.config import validate_config, validate_families
from tf2lightning.run import Run
from tf2lightning.stages.train import train
import yaml
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s %(message)s")
config = yaml.safe_load(open(sys.argv[1]))
validate_config(config)
validate_families(config)
run = Run.from_config(config, "dga", "domains", "CnnLstm")
out = sys.argv[3]
train(run, sys.argv[2], "", f"{out}/model.pt", f"{out}/history.tsv")
"""


def merged(base: dict, over: dict) -> dict:
    """``over`` merged into ``base`` key by key (as Snakemake merges ``--configfile``)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and key in out else value
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work directory with the tiny data set's ``data.h5`` and a config that trains for many epochs."""
    work = tmp_path_factory.mktemp("resume")
    (work / "config").symlink_to(REPO / "config")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    snakemake = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-c2"]
    subprocess.run(
        [*snakemake, "--configfile", str(TINY), "--workflow-profile", "none", "results/dga/domains/data.h5"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )
    config = merged(
        yaml.safe_load((REPO / "config" / "config.yaml").read_text()), yaml.safe_load(TINY.read_text())
    )
    train = {"init": "scratch", "max_epochs": MAX_EPOCHS, "patience": MAX_EPOCHS, "batch_size": 32}
    config["families"]["dga"]["train"] = train
    (work / "resume.yaml").write_text(yaml.safe_dump(config))
    return work


def start_training(work: Path, log: Path) -> subprocess.Popen:
    """Start the training stage in a child process writing to ``log``."""
    with open(log, "w") as handle:
        return subprocess.Popen(
            [sys.executable, "-c", TRAIN_CHILD, "resume.yaml", "results/dga/domains/data.h5", "train"],
            cwd=work,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def test_killed_training_resumes_from_last_checkpoint(workdir: Path) -> None:
    last = workdir / "train" / "checkpoints" / "last.ckpt"
    first = start_training(workdir, workdir / "first.log")
    deadline = time.monotonic() + 600  # only a bound on a hang: the loop ends at the first checkpoint
    while not last.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL, (workdir / "first.log").read_text()
    assert not (workdir / "train" / "model.pt").exists()

    killed = torch.load(last, map_location="cpu", weights_only=False)
    killed_rows = next(s["rows"] for k, s in killed["callbacks"].items() if k.startswith("History"))
    steps_per_epoch = killed["global_step"] // (killed["epoch"] + 1)
    assert 0 < killed["global_step"] < MAX_EPOCHS * steps_per_epoch

    second = start_training(workdir, workdir / "second.log")
    assert second.wait(timeout=300) == 0, (workdir / "second.log").read_text()
    log = (workdir / "second.log").read_text()
    assert "resuming from train/checkpoints/last.ckpt" in log, log
    started = re.search(r"training starts at epoch (\d+), step (\d+)", log)
    assert started is not None, log
    assert int(started.group(2)) == killed["global_step"]
    assert int(started.group(1)) == killed["epoch"] + 1

    history = read_tsv(workdir / "train" / "history.tsv")
    steps = [int(float(row["step"])) for row in history]
    assert steps == [steps_per_epoch * (epoch + 1) for epoch in range(MAX_EPOCHS)]
    for before, after in zip(killed_rows, history, strict=False):
        assert float(after["val_loss"]) == pytest.approx(before["val_loss"], abs=1e-4)  # TSV: 4 decimals
