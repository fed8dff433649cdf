"""Snakemake adapter: data benchmark, the legacy reader vs the HDF5 DataModule and vs the converter."""

from tf2lightning.snakemake_job import snakemake_job

with snakemake_job(snakemake) as run:  # noqa: F821
    from tf2lightning.bench.suite import Settings, bench_data

    bench_data(run, dict(snakemake.input.items()), snakemake.output[0], Settings.for_run(run))  # noqa: F821
