"""Shared helpers: config validation, wildcard constraints, input functions, target lists."""

import re
from pathlib import Path

from tf2lightning.bench.family_hooks import declared_tasks, extra_tables
from tf2lightning.config import validate_families
from tf2lightning.errors import ConfigError
from tf2lightning.families import family_module, family_package_file, family_spec
from tf2lightning.run import Run, iter_runs
from tf2lightning.stages.data import dataset_shards

validate_families(config)

RUNS = list(iter_runs(config))

# For the families' own rules.smk files (included from inside the package): absolute paths to the
# shared adapter script and environments.
FAMILY_STAGE_SCRIPT = str(Path(workflow.basedir) / "workflow" / "scripts" / "family_stage.py")
TF_ENV = str(Path(workflow.basedir) / "workflow" / "envs" / "tf.yaml")
TORCH_ENV = str(Path(workflow.basedir) / "workflow" / "envs" / "torch.yaml")


def _alternatives(names):
    return "|".join(sorted({re.escape(n) for n in names}, key=len, reverse=True))


wildcard_constraints:
    family=_alternatives(f for f, _, _ in RUNS),
    dataset=_alternatives(d for _, d, _ in RUNS),
    arch=_alternatives(a for _, _, a in RUNS),
    source=_alternatives(s for f in {f for f, _, _ in RUNS} for s in family_spec(f).weight_sources),
    shard="[^/]+",


def run_of(wildcards):
    """The Run (config slice) for a job's wildcards; datasets-only rules get an empty arch."""
    return Run.from_config(config, wildcards.family, wildcards.dataset, wildcards.get("arch"))


def legacy_env(wildcards):
    """The legacy rules run in the environment of the framework the family comes from."""
    side = family_spec(wildcards.family).legacy_framework
    return "../envs/tf.yaml" if side == "tensorflow" else "../envs/torch.yaml"


def container(side):
    """The configured Apptainer image of a side (``tf``, ``torch``, ``torch_gpu``), for ``--sdm apptainer``."""
    images = config.get("containers", {})

    def image(wildcards):
        if side == "legacy":
            tf = family_spec(wildcards.family).legacy_framework == "tensorflow"
            return images.get("tf") if tf else images.get("torch")
        if side == "torch_gpu":
            return images.get("torch_gpu") or images.get("torch")
        return images.get(side)

    return image


def converted_weights(wildcards):
    """One converted safetensors file per saved format of the legacy model."""
    prefix = f"results/{wildcards.family}/{wildcards.dataset}_{wildcards.arch}/weights"
    return [f"{prefix}/{source}.safetensors" for source in family_spec(wildcards.family).weight_sources]


def primary_weights(wildcards):
    """The converted weights that training starts from and exports use: the first declared source."""
    return converted_weights(wildcards)[0]


def extra_inputs(rule):
    """An input function adding the family's ``extra_inputs[rule]`` (e.g. an oracle model); a callable
    entry gets the job's Run (e.g. a fine-tuning run names the trained model it starts from)."""

    def inputs(wildcards):
        patterns = family_spec(wildcards.family).extra_inputs.get(rule, {})
        if callable(patterns):
            patterns = patterns(run_of(wildcards))
        return {name: expand(pattern, **wildcards)[0] for name, pattern in patterns.items()}

    return inputs


def legacy_data_dir(wildcards):
    """The user's legacy dataset directory if configured, else the synthetic one we make."""
    given = config["families"][wildcards.family]["datasets"][wildcards.dataset].get("legacy_data")
    return given or f"results/{wildcards.family}/{wildcards.dataset}/legacy_data"


def has_shards(wildcards):
    """Whether the family converts a dataset shard by shard (its data module has `shards`)."""
    return hasattr(family_module(wildcards.family, "data"), "shards")


def legacy_data_ready(wildcards):
    """The legacy dataset folder; when we make it, only after its (checkpoint) job, so its files are known."""
    if config["families"][wildcards.family]["datasets"][wildcards.dataset].get("legacy_data"):
        return legacy_data_dir(wildcards)
    return checkpoints.legacy_data.get(family=wildcards.family, dataset=wildcards.dataset).output[0]


def shard_files(wildcards):
    """The input files of the shard ``{shard}``."""
    legacy = legacy_data_ready(wildcards)
    for shard in dataset_shards(run_of(wildcards), legacy):
        if shard.name == wildcards.shard:
            return [str(path) for path in shard.paths]
    raise ValueError(f"{legacy}: no shard {wildcards.shard!r}")


def convert_data_inputs(wildcards):
    """The converted shards to gather, or the legacy folder for families converted in one job."""
    if not has_shards(wildcards):
        return {"legacy": legacy_data_dir(wildcards)}
    prefix = f"results/{wildcards.family}/{wildcards.dataset}/shards"
    shards = dataset_shards(run_of(wildcards), legacy_data_ready(wildcards))
    return {"shards": [f"{prefix}/{shard.name}.h5" for shard in shards]}


def legacy_model_dir(wildcards):
    """The user's legacy model directory (or a TF checkpoint prefix: its ``.index`` file) if configured,
    else the one we train."""
    given = config["families"][wildcards.family]["archs"][wildcards.arch].get("legacy_model")
    given = given and given.replace("{dataset}", wildcards.dataset)  # one arch entry, one model per dataset
    if given and not Path(given).exists() and Path(f"{given}.index").exists():
        return f"{given}.index"
    return given or f"results/{wildcards.family}/{wildcards.dataset}_{wildcards.arch}/legacy_model"


def family_rule_files():
    """The ``rules.smk`` of each configured family that brings rules of its own (e.g. an oracle)."""
    files = (family_package_file(f, "rules.smk") for f in sorted({f for f, _, _ in RUNS}))
    return [str(path) for path in files if path.is_file()]


def selected_runs():
    """The combinations that ``all`` builds (the config's ``targets``, ``family/dataset_arch``), or every one."""
    wanted = config.get("targets")
    if wanted is None:
        return RUNS
    names = {f"{f}/{d}_{a}": (f, d, a) for f, d, a in RUNS}
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise ConfigError(f"config targets: {unknown} are not configured combinations ({sorted(names)})")
    return [names[name] for name in wanted]


def all_targets():
    """The evaluation, parity report and exports of every combination that ``all`` builds."""
    targets = []
    for family, dataset, arch in selected_runs():
        prefix = f"results/{family}/{dataset}_{arch}"
        targets += [f"{prefix}/eval.tsv", f"{prefix}/parity.tsv", f"{prefix}/export/model.onnx"]
    return targets


def bench_tables(wildcards):
    """The benchmark TSVs of one combination, for the tasks its family declares."""
    tasks = declared_tasks(wildcards.family)
    prefix = f"results/{wildcards.family}/{wildcards.dataset}"
    tables = [f"{prefix}_{wildcards.arch}/bench/inference.tsv"] if "inference" in tasks else []
    if "training" in tasks:
        tables.append(f"{prefix}_{wildcards.arch}/bench/training.tsv")
    if "loading" in tasks or "convert" in tasks:
        tables.append(f"{prefix}/bench/data.tsv")
    return tables + extra_tables(wildcards.family)


def report_targets():
    """Every report output: the machine page and the pages and figures of each combination ``all`` builds."""
    targets = ["results/report/machine.html"]
    for family, dataset, arch in selected_runs():
        prefix = f"results/report/{family}/{dataset}_{arch}"
        targets += [f"{prefix}/{name}" for name in ("summary.html", "parity.png", "training.png", "throughput.png")]
    return targets
