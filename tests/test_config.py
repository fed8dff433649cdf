"""Config validation: defaults filled, every mistake named by its key path."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.workflow_runner import REPO
from tf2lightning.config import load_config, validate_config
from tf2lightning.errors import ConfigError
from tf2lightning.run import Run, iter_runs


def demo() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def test_demo_config_is_valid_and_gets_defaults() -> None:
    config = load_config(REPO / "config/config.yaml")
    section = config["families"]["dga"]
    assert section["parity"]["atol"] == 1e-5
    assert section["archs"]["CnnLstm"]["legacy_model"] is None
    run = Run.from_config(config, "dga", "domains", "CnnLstm")
    assert run.name == "dga/domains_CnnLstm" and run.dataset["max_len"] == 40


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(sed=1), r"config key <root>: Additional properties .*'sed'"),
        (lambda c: c.update(seed="zero"), r"config key seed: 'zero' is not of type 'integer'"),
        (
            lambda c: c["families"]["dga"]["datasets"]["domains"].update(n_train="many"),
            r"config key families\.dga\.datasets\.domains\.n_train: 'many' is not of type 'integer'",
        ),
        (
            lambda c: c["families"]["dga"]["archs"]["CnnLstm"].update(lstm_unit=3),
            r"families\.dga\.archs\.CnnLstm: Additional properties .*'lstm_unit'",
        ),
        (
            lambda c: c["families"]["dga"]["train"].update(init="pretrained"),
            r"families\.dga\.train\.init: 'pretrained' is not one of",
        ),
        (lambda c: c["families"].update(cats={}), r"families\.cats: unknown family; registered: "),
        (
            lambda c: c["families"]["dga"].update(runs=[["domains", "Transformer"]]),
            r"families\.dga\.runs\.0: 'Transformer' is not one of the configured archs",
        ),
    ],
    ids=["top-key", "top-type", "nested-type", "nested-key", "enum", "family", "runs"],
)
def test_mistakes_are_named_by_key_path(edit: Any, message: str) -> None:
    config = copy.deepcopy(demo())
    edit(config)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_runs_default_to_every_dataset_with_every_arch() -> None:
    config = demo()
    config["families"]["dga"]["archs"]["Wide"] = dict(config["families"]["dga"]["archs"]["CnnLstm"])
    validate_config(config)
    dga_runs = sorted(run for run in iter_runs(config) if run[0] == "dga")
    assert dga_runs == [("dga", "domains", "CnnLstm"), ("dga", "domains", "Wide")]


def test_validate_config_command_uses_the_workflow_schema(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The top-level schema is the workflow's own file: a stricter copy in ``--workflow-dir`` is obeyed."""
    from tf2lightning.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["validate-config", str(REPO / "config/config.yaml"), "--workflow-dir", str(REPO)]) == 0
    assert "valid (" in capsys.readouterr().out
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    schema["properties"]["seed"] = {"type": "string"}
    (tmp_path / "workflow/schemas").mkdir(parents=True)
    (tmp_path / "workflow/schemas/config.schema.yaml").write_text(yaml.safe_dump(schema))
    assert main(["validate-config", str(REPO / "config/config.yaml")]) != 0
    assert "config key seed" in capsys.readouterr().err
