"""The parent/child protocol: one JSON request in, one JSON result out, one child process per side.

The parent (no framework) writes ``request.json``, starts ``python -m tf2lightning.bench.child REQUEST
RESULT`` once for the TensorFlow side and once for the torch side, and reads each ``result.json``::

    request = {"side": "tf" | "torch", "task": "inference" | "training" | "loading" | "convert" | ...,
               "run": run_to_dict(run), "paths": {name: path}, "batch_size": int, "threads": int,
               "warmup": int, "repeats": int, "device": "auto" | "cpu"}
    result  = {"side": ..., "task": ..., "variants": {name: Timing.to_dict() | {"error": str}},
               "peak_rss_mb": float, "device": str, "notes": {...}}

The child sets the thread-count variables before importing its framework and records its own peak
resident memory. The interpreter of each side is ``$TF2LIGHTNING_TF_PYTHON`` /
``$TF2LIGHTNING_TORCH_PYTHON`` when set (separate conda envs), else the parent's own.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tf2lightning.bench.timing import Timing

log = logging.getLogger(__name__)

Side = Literal["tf", "torch"]
PYTHON_VARIABLES = {"tf": "TF2LIGHTNING_TF_PYTHON", "torch": "TF2LIGHTNING_TORCH_PYTHON"}
LEGACY_READER = "legacy reader"
"""The loading variant of a family ported from plain PyTorch: its plain loop's own reader, the baseline."""
CONVERTER = "converter"
"""The convert task's variant timing the family's ``data.convert`` (its reader is the baseline)."""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


@dataclass
class SideResult:
    """What one side's child reported: a Timing or an error message per variant."""

    side: str
    task: str
    timings: dict[str, Timing] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    peak_rss_mb: float | None = None
    device: str = "cpu"
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SideResult:
        result = cls(
            data["side"], data["task"], peak_rss_mb=data.get("peak_rss_mb"), device=data.get("device", "cpu")
        )
        result.notes = dict(data.get("notes", {}))
        for name, entry in data.get("variants", {}).items():
            if "error" in entry:
                result.errors[name] = str(entry["error"])
            else:
                result.timings[name] = Timing.from_dict(entry)
        return result


def child_env(threads: int, device: str = "auto") -> dict[str, str]:
    """The child's environment: thread counts fixed, TensorFlow quiet, and no GPU visible when the
    request says ``device="cpu"`` (so code that picks its own device, e.g. a Trainer, stays on the CPU)."""
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def run_side(request: dict[str, Any], work_dir: Path, timeout: float = 1800) -> SideResult:
    """Run one side's child on ``request``; a crashed child becomes an error for the whole side."""
    side = request["side"]
    python = os.environ.get(PYTHON_VARIABLES[side]) or sys.executable
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        req, res = Path(tmp) / "request.json", Path(tmp) / "result.json"
        req.write_text(json.dumps(request, indent=2))
        cmd = [python, "-m", "tf2lightning.bench.child", str(req), str(res)]
        log.info("%s/%s child: %s", side, request["task"], " ".join(cmd))
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=child_env(int(request["threads"]), str(request.get("device", "auto"))),
            )
        except subprocess.TimeoutExpired:
            return SideResult(side, request["task"], errors={"*": f"child timed out after {timeout:.0f} s"})
        if proc.stderr.strip():
            log.info("%s/%s child stderr:\n%s", side, request["task"], proc.stderr[-6000:])
        if proc.returncode != 0 or not res.exists():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return SideResult(side, request["task"], errors={"*": f"child exited {proc.returncode}: {last}"})
        return SideResult.from_json(json.loads(res.read_text()))


class Variants:
    """Collects one child's results: each variant's Timing, or its error (the other variants still run)."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, Any] = {}

    def record(self, name: str, make: Any) -> Timing | None:
        """Call ``make() -> Timing``; an exception becomes this variant's error, logged with its traceback."""
        try:
            timing = make()
        except Exception as error:  # a failing variant is a result, not a crash
            import traceback

            traceback.print_exc()
            self.entries[name] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
            return None
        self.entries[name] = timing.to_dict()
        return timing

    def error(self, name: str, message: str) -> None:
        self.entries[name] = {"error": message}
