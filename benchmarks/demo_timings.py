"""Where a workflow run's time went: per rule, the jobs' wall seconds and CPU seconds from Snakemake's
``benchmark:`` files (``results/benchmarks/<rule>/...tsv``), largest first, with the slowest jobs.

    .venv/bin/python benchmarks/demo_timings.py results/benchmarks

``cpu_time`` is what Snakemake's benchmark sampler saw (it samples the job's processes every few seconds,
so very short jobs read low); wall seconds include waiting for a core when other jobs share the machine.
The last line divides the summed wall seconds by the number of cores (``--cores``, default 2): the wall
time of a perfectly packed run on idle cores, a lower bound for ``make demo`` when the run was not
contended.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path


def job_times(root: Path) -> dict[str, list[tuple[str, float, float]]]:
    """``{rule: [(job, wall s, cpu s), ...]}`` from the last row of each benchmark TSV."""
    rules: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for path in sorted(root.rglob("*.tsv")):
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if not rows:
            continue
        last = rows[-1]
        rule, *job = path.relative_to(root).with_suffix("").parts
        rules[rule].append(("/".join(job), float(last["s"]), float(last.get("cpu_time") or 0.0)))
    return rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, nargs="?", default=Path("results/benchmarks"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--top", type=int, default=3, help="slowest jobs listed per rule")
    args = parser.parse_args()
    rules = job_times(args.root)
    if not rules:
        raise SystemExit(f"{args.root}: no benchmark files")
    print("| rule | jobs | wall min | CPU min | slowest jobs (wall s) |\n|---|---|---|---|---|")
    total_wall = total_cpu = 0.0
    for rule, jobs in sorted(rules.items(), key=lambda item: -sum(j[1] for j in item[1])):
        wall, cpu = sum(j[1] for j in jobs), sum(j[2] for j in jobs)
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        slowest = ", ".join(f"{name} {s:.0f}" for name, s, _ in sorted(jobs, key=lambda j: -j[1])[: args.top])
        print(f"| {rule} | {len(jobs)} | {wall / 60:.1f} | {cpu / 60:.1f} | {slowest} |")
    jobs = sum(map(len, rules.values()))
    print(f"| total | {jobs} | {total_wall / 60:.1f} | {total_cpu / 60:.1f} | |")
    print(f"summed job wall time / {args.cores} cores = {total_wall / 60 / args.cores:.1f} min")


if __name__ == "__main__":
    main()
