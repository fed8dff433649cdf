"""Snakemake adapter: one shard of a legacy dataset -> HDF5 (no framework)."""

from tf2lightning.snakemake_job import snakemake_job

with snakemake_job(snakemake) as run:  # noqa: F821
    from tf2lightning.stages.data import convert_shard

    convert_shard(run, snakemake.params.legacy, snakemake.wildcards.shard, snakemake.output[0])  # noqa: F821
