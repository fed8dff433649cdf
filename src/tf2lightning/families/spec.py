"""What the workflow needs to know about a family before importing any of its framework code."""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    from tf2lightning.run import Run

#: A rule's extra inputs, name -> path pattern; or a function of the job's Run giving them (when they depend
#: on the configuration, e.g. the trained model of another architecture to start from).
ExtraInputs: TypeAlias = "Mapping[str, str] | Callable[[Run], Mapping[str, str]]"


@dataclass(frozen=True)
class FamilySpec:
    """Declared in each family's ``__init__.py`` as ``SPEC``.

    ``legacy_framework`` picks the environment of the legacy rules (``legacy_data``, ``legacy_model``,
    ``reference``): the TensorFlow env for Keras families, the torch env for plain-PyTorch families.
    ``weight_sources`` are the saved formats of the legacy model that ``convert_weights`` reads (each is a
    ``{source}`` wildcard value and a file or directory name inside the legacy model directory).
    ``extra_inputs`` adds family-specific inputs to generic rules, e.g. an oracle model for ``evaluate``
    (patterns use the usual wildcards; the family's ``rules.smk`` or another run's rules make them), or a
    function of the job's ``Run`` returning such patterns.
    ``configure(section, where)``, if given, completes or checks the family's config section in place
    before schema defaults are filled and before any job (e.g. sizes read from a legacy checkpoint);
    ``where`` is the section's key path, for ConfigError messages.
    """

    legacy_framework: Literal["tensorflow", "torch"]
    weight_sources: Mapping[str, str] = field(default_factory=dict)
    extra_inputs: Mapping[str, ExtraInputs] = field(default_factory=dict)
    configure: Callable[[MutableMapping[str, Any], str], None] | None = None
