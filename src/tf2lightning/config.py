"""Load and validate the workflow configuration: the top-level schema plus each family's own schema.

Validation fills schema defaults in place and fails on the first problem with the key path, e.g.
``families.dga.datasets.domains.n_train: 'many' is not of type 'integer'``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tf2lightning.errors import ConfigError
from tf2lightning.families import FAMILIES, family_package_file, family_spec

SCHEMA_IN_WORKFLOW = Path("workflow") / "schemas" / "config.schema.yaml"
SOURCE_WORKFLOW = Path(__file__).resolve().parents[2]


def _with_defaults(validator_class: type) -> type:
    """A validator class that also inserts each property's ``default`` into the instance."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema) -> Iterator[jsonschema.ValidationError]:
        if isinstance(instance, dict):
            for name, subschema in props.items():
                if isinstance(subschema, dict) and "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from check_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def family_schema(family: str) -> dict[str, Any]:
    """The JSON schema of one registered family's config section."""
    return yaml.safe_load(family_package_file(family, "schema.yaml").read_text())


def _check(instance: Any, schema: dict[str, Any], prefix: str) -> None:
    errors = sorted(_Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        path = ".".join([prefix, *map(str, error.absolute_path)]).strip(".") or "<root>"
        raise ConfigError(f"config key {path}: {error.message}")


def top_schema(workflow_dir: str | Path | None = None) -> Path:
    """The workflow's top-level schema: in ``workflow_dir`` (default: the current directory, where
    Snakemake runs), else in the source tree this package was installed from (an editable install)."""
    candidates = [Path(workflow_dir or Path.cwd()) / SCHEMA_IN_WORKFLOW, SOURCE_WORKFLOW / SCHEMA_IN_WORKFLOW]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no {SCHEMA_IN_WORKFLOW} in {candidates[0].parents[2]}: run from the workflow directory "
        "or pass --workflow-dir"
    )


def validate_config(config: MutableMapping[str, Any], schema: str | Path | None = None) -> None:
    """Validate ``config`` in place (filling defaults); raise ConfigError naming the key path.

    ``schema`` is the top-level schema file (default: :func:`top_schema`)."""
    _check(config, yaml.safe_load(Path(schema or top_schema()).read_text()), "")
    validate_families(config)


def validate_families(config: MutableMapping[str, Any]) -> None:
    """Validate each ``families.<name>`` section against its family's schema, and the ``runs`` lists."""
    for family, section in config["families"].items():
        if family not in FAMILIES:
            known = ", ".join(sorted(FAMILIES))
            raise ConfigError(f"config key families.{family}: unknown family; registered: {known}")
        configure = family_spec(family).configure
        if configure is not None and isinstance(section, MutableMapping):
            configure(section, f"families.{family}")
        _check(section, family_schema(family), f"families.{family}")
        for i, pair in enumerate(section.get("runs") or []):
            dataset, arch = pair
            for kind, name in (("datasets", dataset), ("archs", arch)):
                if name not in section[kind]:
                    raise ConfigError(
                        f"config key families.{family}.runs.{i}: {name!r} is not one of the "
                        f"configured {kind} ({', '.join(section[kind])})"
                    )


def load_config(path: str | Path, workflow_dir: str | Path | None = None) -> dict[str, Any]:
    """Read a YAML config file and validate it against the schemas of the workflow in ``workflow_dir``."""
    config = yaml.safe_load(Path(path).read_text())
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: the config must be a mapping, found {type(config).__name__}")
    validate_config(config, top_schema(workflow_dir))
    return config
