"""Data conversion (torch env, no TensorFlow): legacy-format records -> HDF5.

A family with a shard hook (``shards``/``convert_shard`` in its ``data`` module, see
``tf2lightning.core.shards``) is converted one input file (or group) per job, ``convert_shard``, and
``convert_data`` gathers the shards into ``data.h5`` (virtual datasets: no copy). A changed input file
reconverts its own shard only. Other families are converted by ``convert_data`` in one job.
"""

rule convert_shard:
    input:
        shard_files,
    output:
        "results/{family}/{dataset}/shards/{shard}.h5",
    params:
        run=run_of,
        legacy=legacy_data_dir,
    log:
        "results/logs/convert_shard/{family}/{dataset}/{shard}.log",
    benchmark:
        "results/benchmarks/convert_shard/{family}/{dataset}/{shard}.tsv"
    conda:
        "../envs/torch.yaml"
    container:
        container("torch")
    script:
        "../scripts/convert_shard.py"


rule convert_data:
    input:
        unpack(convert_data_inputs),
    output:
        "results/{family}/{dataset}/data.h5",
    params:
        run=run_of,
    log:
        "results/logs/convert_data/{family}/{dataset}.log",
    benchmark:
        "results/benchmarks/convert_data/{family}/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    container:
        container("torch")
    script:
        "../scripts/convert_data.py"
