"""Snakemake adapter: gather the converted shards into ``data.h5``, or convert the legacy folder in one go."""

from tf2lightning.snakemake_job import snakemake_job

with snakemake_job(snakemake) as run:  # noqa: F821
    from tf2lightning.stages.data import convert_data, gather_shards

    if hasattr(snakemake.input, "shards"):  # noqa: F821
        gather_shards(snakemake.input.shards, snakemake.output[0])  # noqa: F821
    else:
        convert_data(run, snakemake.input.legacy, snakemake.output[0])  # noqa: F821
