"""The workflow on a live one-node Slurm (started here, as root), run the way users type it.

``../shared/tools/local-slurm.sh`` installs Debian's Slurm and starts it without systemd, with one fake GPU
(GRES). ``tf2lightning install-profile profiles/slurm`` (what ``make slurm-profile`` runs) installs the
profile under the user's Snakemake config directory (here a scratch ``XDG_CONFIG_HOME``), and then the
literal ``snakemake --profile slurm all`` runs a tiny DGA-only config from the workflow's root. The run
must end green with the GPU rules of the profile submitted with their GPU request and every other rule
without one; a rerun after removing one target submits only that job.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.workflow_runner import copy_workflow

REPO = Path(__file__).resolve().parents[1]
LOCAL_SLURM = REPO.parent / "shared" / "tools" / "local-slurm.sh"
TINY = REPO / "tests" / "configs" / "dga_tiny.yaml"
TARGET = "results/dga/domains_CnnLstm/eval.tsv"
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/")
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """Start (installing if needed) the one-node cluster with one fake GPU; it is left running."""
    env = {**os.environ, "SLURM_FAKE_GPUS": "1", "SLURM_ACCOUNTING": "0"}
    done = subprocess.run(["bash", str(LOCAL_SLURM), "start"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{LOCAL_SLURM} failed:\n{done.stdout}\n{done.stderr}"


def gpu_rules() -> set[str]:
    """The rules that profiles/slurm gives a GPU."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    return {rule for rule, res in profile["set-resources"].items() if "gpu" in res or "gres" in res}


def tiny_dga_workflow(root: Path) -> Path:
    """A copy of the workflow whose ``config/config.yaml`` is the tiny DGA run alone."""
    workdir = copy_workflow(root)
    full = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    tiny = yaml.safe_load(TINY.read_text())["families"]["dga"]
    dga = full["families"]["dga"]
    for section, values in tiny.items():
        for key, value in values.items():
            if isinstance(value, dict):
                dga[section].setdefault(key, {}).update(value)
            else:
                dga[section][key] = value
    config = {"seed": full["seed"], "families": {"dga": dga}}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


def as_typed(
    workdir: Path, *args: str, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """``ARGS`` run as typed in ``workdir``; returns the run and {Slurm job id: rule}."""
    done = subprocess.run(list(args), cwd=workdir, env=env, capture_output=True, text=True, timeout=1500)
    return done, {job: rule for job, rule in SUBMITTED.findall(done.stderr)}


def scontrol(job: str) -> str:
    """``scontrol show job`` (finished jobs stay visible for MinJobAge = 10 min)."""
    return subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, check=True).stdout


def test_snakemake_profile_slurm_all_as_typed(slurm_cluster: None, tmp_path: Path) -> None:
    workdir = tiny_dga_workflow(tmp_path / "workflow")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "XDG_CONFIG_HOME": str(tmp_path)}
    done, _ = as_typed(workdir, "tf2lightning", "install-profile", "profiles/slurm", env=env)
    assert done.returncode == 0, done.stderr
    installed = tmp_path / "snakemake" / "slurm" / "config.yaml"
    assert installed.is_file()
    # This one-node cluster runs each job in seconds: it is polled after 2 s instead of the plugin's 40 s,
    # which a shared cluster's slurmctld should keep (most of this test's time was that wait, per DAG level).
    installed.write_text(installed.read_text() + "slurm-init-seconds-before-status-checks: 2\n")

    done, jobs = as_typed(workdir, "snakemake", "--profile", "slurm", "all", env=env)
    assert done.returncode == 0, done.stderr[-6000:]
    assert (workdir / TARGET).stat().st_size > 0
    assert (workdir / "results/report/dga/domains_CnnLstm/summary.html").stat().st_size > 0
    assert {"legacy_data", "convert_data", "train", "evaluate", "bench_data", "report_combination"} <= set(
        jobs.values()
    )
    gpu = gpu_rules()
    assert {"train", "evaluate"} <= gpu
    for job, rule in jobs.items():
        details = scontrol(job)
        assert "JobState=COMPLETED" in details, details
        asks_gpu = re.search(r"TresPerJob=\S*gres[:/]gpu:1", details) is not None
        assert asks_gpu == (rule in gpu), f"{rule}:\n{details}"

    # inside the job, Slurm gave the training process the (fake) GPU
    train_log = (workdir / "results/logs/train/dga/domains_CnnLstm.log").read_text()
    train_job = next(job for job, rule in jobs.items() if rule == "train")
    assert re.search(rf"Slurm job {train_job}, CUDA_VISIBLE_DEVICES=\d", train_log), train_log

    # per-target rerun: only the missing job is submitted
    (workdir / TARGET).unlink()
    done, jobs = as_typed(workdir, "snakemake", "--profile", "slurm", TARGET, env=env)
    assert done.returncode == 0, done.stderr[-6000:]
    assert sorted(jobs.values()) == ["evaluate"]
    assert (workdir / TARGET).stat().st_size > 0
