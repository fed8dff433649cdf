"""The quality each family claims for its trained models, checked on ``eval.tsv`` against the file's own
baseline columns (a floor only where a family has no baseline column).

=========  =====================================================================================
family     claim (``metric > reference + margin``, or ``<`` ... ``- margin``)
=========  =====================================================================================
dga        ``accuracy > majority_class_accuracy + 0.1``
tabular    ``accuracy > majority_class_accuracy + 0.1``
clair3     every head: ``<head>_accuracy > <head>_majority_accuracy``
epibert    masked-ATAC Pearson ``> 0.3`` (``pearson_r`` of ``pretrain``, ``atac_pearson_r`` of a
           fine-tuned run) and, fine-tuned, expression ``pearson_r > 0.1``
d3         ``mse_ratio_diffusion_to_random < 1`` (designed sequences nearer their target activity
           than random DNA, by the oracle) and upstream's ``sp_mse_ratio_diffusion_to_shuffled < 1``
           (designs nearer the test set's oracle profile than the test sequences shuffled)
=========  =====================================================================================

``python -m tf2lightning.claims [config.yaml] [results_dir]`` checks every configured combination that
has an ``eval.tsv``, prints one line per claim and exits 1 if a claim fails or no ``eval.tsv`` exists.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from tf2lightning.core.tsv import read_tsv
from tf2lightning.run import iter_runs

ACCURACY_MARGIN = 0.1
EPIBERT_ATAC_PEARSON_FLOOR = 0.3
EPIBERT_EXPRESSION_PEARSON_FLOOR = 0.1
"""Above chance: over the demo's 5,952 test bins an unrelated prediction's r has a standard deviation of
about 0.013, so ``> 0`` would pass half the time; runs read 0.27-0.33 (demo) and 0.28-0.32 (tiny test)."""


@dataclass(frozen=True)
class Claim:
    """``metric`` above (``>``) or below (``<``) ``reference`` (a metric of the same file, or a number)
    by more than ``margin``."""

    metric: str
    relation: str
    reference: str | float
    margin: float = 0.0

    def threshold(self, metrics: Mapping[str, float]) -> float:
        base = metrics[self.reference] if isinstance(self.reference, str) else self.reference
        return base + self.margin if self.relation == ">" else base - self.margin

    def holds(self, metrics: Mapping[str, float]) -> bool:
        value, limit = metrics[self.metric], self.threshold(metrics)
        return bool(value > limit if self.relation == ">" else value < limit)  # False for NaN

    def describe(self, metrics: Mapping[str, float]) -> str:
        reference = self.reference if isinstance(self.reference, str) else f"{self.reference:g}"
        margin = f" {'+' if self.relation == '>' else '-'} {self.margin:g}" if self.margin else ""
        text = f"{self.metric} {metrics[self.metric]:.4g} {self.relation} {reference}{margin}"
        return text if not isinstance(self.reference, str) else f"{text} = {self.threshold(metrics):.4g}"


def claims_for(family: str, metrics: Mapping[str, float]) -> list[Claim]:
    """The claims of ``family`` for one ``eval.tsv`` (its metrics decide the head set and the mode)."""
    if family in ("dga", "tabular"):
        return [Claim("accuracy", ">", "majority_class_accuracy", ACCURACY_MARGIN)]
    if family == "clair3":
        heads = sorted(
            k.removesuffix("_majority_accuracy") for k in metrics if k.endswith("_majority_accuracy")
        )
        return [Claim(f"{head}_accuracy", ">", f"{head}_majority_accuracy") for head in heads]
    if family == "epibert":
        if "atac_pearson_r" in metrics:  # fine-tuned: expression is pearson_r, the ATAC head is kept
            return [
                Claim("atac_pearson_r", ">", EPIBERT_ATAC_PEARSON_FLOOR),
                Claim("pearson_r", ">", EPIBERT_EXPRESSION_PEARSON_FLOOR),
            ]
        return [Claim("pearson_r", ">", EPIBERT_ATAC_PEARSON_FLOOR)]
    if family == "d3":
        return [
            Claim("mse_ratio_diffusion_to_random", "<", 1.0),
            Claim("sp_mse_ratio_diffusion_to_shuffled", "<", 1.0),
        ]
    raise KeyError(f"no quality claims are defined for family {family!r}")


def read_metrics(eval_tsv: Path) -> dict[str, float]:
    """``metric -> value`` of an ``eval.tsv``."""
    return {row["metric"]: float(row["value"]) for row in read_tsv(eval_tsv)}


def verdicts(family: str, metrics: Mapping[str, float]) -> list[tuple[bool, str]]:
    """``(holds, description)`` of each claim of ``family`` on ``metrics`` (a missing metric fails)."""
    found = claims_for(family, metrics)
    if not found:
        return [(False, f"no claim could be formed from the metrics {sorted(metrics)}")]
    out = []
    for claim in found:
        missing = [m for m in (claim.metric, claim.reference) if isinstance(m, str) and m not in metrics]
        if missing:
            out.append((False, f"{claim.metric}: missing metric(s) {missing}"))
        else:
            out.append((claim.holds(metrics), claim.describe(metrics)))
    return out


def failures(family: str, metrics: Mapping[str, float]) -> list[str]:
    """The claims of ``family`` that ``metrics`` does not meet."""
    return [text for ok, text in verdicts(family, metrics) if not ok]


def main(argv: list[str]) -> int:
    config_path = Path(argv[0] if argv else "config/config.yaml")
    results = Path(argv[1] if len(argv) > 1 else "results")
    checked, failed = 0, 0
    for family, dataset, arch in iter_runs(yaml.safe_load(config_path.read_text())):
        path = results / family / f"{dataset}_{arch}" / "eval.tsv"
        if not path.exists():
            continue
        checked += 1
        for ok, text in verdicts(family, read_metrics(path)):
            print(f"{'PASS' if ok else 'FAIL'}  {path}: {text}")
            failed += not ok
    if not checked:
        print(f"no eval.tsv of {config_path} under {results}")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
