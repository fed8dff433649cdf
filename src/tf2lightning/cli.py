"""The ``tf2lightning`` command line.

tf2lightning predict results/dga/domains_CnnLstm/train/model.pt domains.txt   # or '-' for stdin
tf2lightning validate-config config/config.yaml
tf2lightning bench-table results/epibert/*/bench/*.tsv   # the benchmark rows as a Markdown table
tf2lightning bench-table results   # the README's benchmark tables and machine line from a finished run
tf2lightning install-profile profiles/slurm   # -> ~/.config/snakemake/slurm: `snakemake --profile slurm all`
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tf2lightning.errors import Tf2LightningError


def _predict(args: argparse.Namespace) -> None:
    from tf2lightning.families import family_module
    from tf2lightning.run import run_from_dict
    from tf2lightning.stages.train import load_model, read_saved_config

    run = run_from_dict(read_saved_config(args.model))
    model, _ = load_model(run, args.model)
    stream = sys.stdin if args.input == "-" else open(args.input)  # noqa: SIM115
    with stream:
        lines = (line.strip() for line in stream)
        for row in family_module(run.family, "predict").predict_lines(run, model, (x for x in lines if x)):
            print(row, flush=False)


def _validate_config(args: argparse.Namespace) -> None:
    from tf2lightning.config import load_config

    config = load_config(args.config, args.workflow_dir)
    print(f"{args.config}: valid ({', '.join(config['families'])})")


def _bench_table(args: argparse.Namespace) -> None:
    from pathlib import Path

    from tf2lightning.bench.readme_tables import readme_tables
    from tf2lightning.bench.suite import markdown_table
    from tf2lightning.core.tsv import read_tsv

    if len(args.tables) == 1 and Path(args.tables[0]).is_dir():
        print(readme_tables(Path(args.tables[0])))
        return
    print(markdown_table([row for path in args.tables for row in read_tsv(path)]))


def _install_profile(args: argparse.Namespace) -> None:
    from tf2lightning.profile_install import install_profile

    target = install_profile(args.profile, args.name)
    print(f"installed {args.profile} as {target}: snakemake --profile {target.name} ...")


def _clair3(args: argparse.Namespace) -> None:
    if args.tool == "export-v2":
        from tf2lightning.families.clair3.v2 import main as tool
    else:
        from tf2lightning.families.clair3.call import main as tool

    status = tool(args.args)
    if status:
        raise SystemExit(status)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tf2lightning", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="classify inputs with a trained model (.pt)")
    predict.add_argument("model", help="model.pt written by the train stage")
    predict.add_argument("input", nargs="?", default="-", help="one item per line; '-' for stdin")
    predict.set_defaults(handler=_predict)

    validate = commands.add_parser("validate-config", help="check a workflow config against the schemas")
    validate.add_argument("config")
    validate.add_argument(
        "--workflow-dir", help="the workflow's directory (with workflow/schemas/); default: the current one"
    )
    validate.set_defaults(handler=_validate_config)

    table = commands.add_parser(
        "bench-table",
        help="benchmark TSVs (bench/*.tsv) as one Markdown table; a results directory: the README's tables",
    )
    table.add_argument(
        "tables", nargs="+", help="the TSVs the benchmark rules wrote, or one results directory of a run"
    )
    table.set_defaults(handler=_bench_table)

    install = commands.add_parser(
        "install-profile", help="install a profile as a named Snakemake profile (never overwrites another)"
    )
    install.add_argument("profile", help="the profile directory, e.g. profiles/slurm")
    install.add_argument("--name", help="the profile's name (default: the directory's name)")
    install.set_defaults(handler=_install_profile)

    clair3 = commands.add_parser(
        "clair3", help="Clair3 tools ('clair3 call --help', 'clair3 export-v2 --help')"
    )
    clair3.add_argument(
        "tool",
        choices=["call", "export-v2"],
        help="call: CallVariants-style streaming batch inference; export-v2: weights for Clair3 v2 (PyTorch)",
    )
    clair3.add_argument("args", nargs=argparse.REMAINDER, help="the tool's own arguments")
    clair3.set_defaults(handler=_clair3)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except Tf2LightningError as error:
        print(f"tf2lightning: error: {error}", file=sys.stderr)
        return 1
    except FileNotFoundError as error:
        print(f"tf2lightning: error: {error.filename}: no such file", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
