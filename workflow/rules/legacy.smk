"""Legacy side (the source framework's env): upstream-format data, the legacy model, reference outputs."""


checkpoint legacy_data:
    output:
        directory("results/{family}/{dataset}/legacy_data"),
    params:
        run=run_of,
    log:
        "results/logs/legacy_data/{family}/{dataset}.log",
    benchmark:
        "results/benchmarks/legacy_data/{family}/{dataset}.tsv"
    conda:
        legacy_env
    container:
        container("legacy")
    script:
        "../scripts/legacy_data.py"


rule legacy_model:
    input:
        data=legacy_data_dir,
    output:
        directory("results/{family}/{dataset}_{arch}/legacy_model"),
    params:
        run=run_of,
    log:
        "results/logs/legacy_model/{family}/{dataset}_{arch}.log",
    benchmark:
        "results/benchmarks/legacy_model/{family}/{dataset}_{arch}.tsv"
    conda:
        legacy_env
    container:
        container("legacy")
    script:
        "../scripts/legacy_model.py"


rule reference:
    input:
        model=legacy_model_dir,
        data=legacy_data_dir,
    output:
        "results/{family}/{dataset}_{arch}/reference.h5",
    params:
        run=run_of,
    log:
        "results/logs/reference/{family}/{dataset}_{arch}.log",
    benchmark:
        "results/benchmarks/reference/{family}/{dataset}_{arch}.tsv"
    conda:
        legacy_env
    container:
        container("legacy")
    script:
        "../scripts/reference.py"
