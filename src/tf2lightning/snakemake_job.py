"""The one adapter between a Snakemake ``script:`` job and the package: logging and threads."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tf2lightning.run import Run

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextlib.contextmanager
def snakemake_job(smk: Any) -> Iterator[Run]:
    """Send the job's output (Python and C level) to its log; yield its :class:`Run` with the job's threads.

    Set thread variables before TensorFlow or torch is imported, so import stage modules inside the block.
    An error is written to the log with its traceback, and its message alone to the real stderr, where
    Snakemake shows it.
    """
    for name in THREAD_VARIABLES:
        os.environ[name] = str(smk.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    log = Path(smk.log[0])
    log.parent.mkdir(parents=True, exist_ok=True)
    real_stderr = os.dup(2)
    # A DDP rank that Lightning starts by re-running this job's script (LOCAL_RANK > 0) appends to the
    # log instead of truncating it; every rank writes in append mode, so their lines interleave whole.
    if os.environ.get("LOCAL_RANK", "0") == "0":
        log.write_text("")
    with open(log, "a", buffering=1) as handle:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        logging.basicConfig(
            stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s", force=True
        )
        try:
            yield dataclasses.replace(smk.params.run, threads=int(smk.threads))
        except BaseException as error:
            traceback.print_exc()
            os.write(real_stderr, f"{type(error).__name__}: {error}\n(log: {log})\n".encode())
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(real_stderr)
