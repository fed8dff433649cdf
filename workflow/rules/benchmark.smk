"""Benchmarks (tf2lightning.bench): TF vs the port, each side in its own child process, one TSV per task.

The rules run in the torch env; the TF side's child uses ``$TF2LIGHTNING_TF_PYTHON`` when set (the TF env's
interpreter), else the same one. A TF family benchmarks inference always, and what its ``bench.TASKS`` adds;
a family ported from plain PyTorch compares its plain loop (and reader) with Lightning (and the DataModule).
Inference and training time the port on the GPU when the job has one (with model FLOPs utilisation).
bench_data times loading (examples/s) and conversion: the legacy reader and the converter over the same
legacy files with one thread each, in MB/s of input, MB per CPU second and examples/s (reader = 1.0).
"""

rule bench_inference:
    input:
        model_dir=legacy_model_dir,
        reference="results/{family}/{dataset}_{arch}/reference.h5",
        weights=primary_weights,
        torchscript="results/{family}/{dataset}_{arch}/export/model.ts",
        onnx="results/{family}/{dataset}_{arch}/export/model.onnx",
    output:
        "results/{family}/{dataset}_{arch}/bench/inference.tsv",
    params:
        run=run_of,
    log:
        "results/logs/bench_inference/{family}/{dataset}_{arch}.log",
    benchmark:
        "results/benchmarks/bench_inference/{family}/{dataset}_{arch}.tsv"
    conda:
        "../envs/torch.yaml"
    container:
        container("torch_gpu")
    script:
        "../scripts/bench_inference.py"


rule bench_training:
    input:
        unpack(extra_inputs("train")),
        model_dir=legacy_model_dir,
        h5="results/{family}/{dataset}/data.h5",
        weights=primary_weights,
    output:
        "results/{family}/{dataset}_{arch}/bench/training.tsv",
    params:
        run=run_of,
    log:
        "results/logs/bench_training/{family}/{dataset}_{arch}.log",
    benchmark:
        "results/benchmarks/bench_training/{family}/{dataset}_{arch}.tsv"
    conda:
        "../envs/torch.yaml"
    container:
        container("torch_gpu")
    script:
        "../scripts/bench_training.py"


rule bench_data:
    input:
        legacy_dir=legacy_data_dir,
        h5="results/{family}/{dataset}/data.h5",
    output:
        "results/{family}/{dataset}/bench/data.tsv",
    params:
        run=run_of,
    log:
        "results/logs/bench_data/{family}/{dataset}.log",
    benchmark:
        "results/benchmarks/bench_data/{family}/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    container:
        container("torch")
    script:
        "../scripts/bench_data.py"


rule bench_machine:
    output:
        "results/report/machine.json",
    log:
        "results/logs/bench_machine/machine.log",
    conda:
        "../envs/torch.yaml"
    container:
        container("torch")
    script:
        "../scripts/bench_machine.py"
