"""EpiBERT against upstream's own files (../shared/upstream/epibert): the Performer's projection matrix
drawn without TensorFlow, upstream's CheckpointManager folders read and mapped (sizes from the shapes), and
the port reproducing upstream's float32 outputs on the probe inputs. Torch side only."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.upstream_fixtures import upstream_dir
from tf2lightning.core.torch_weights import load_mapped, target_spec
from tf2lightning.errors import FormatError, ParityError
from tf2lightning.families.epibert import favor, model, recorded, upstream, weights
from tf2lightning.families.epibert.published import ARCH
from tf2lightning.run import Run

KINDS = ["pretrain", "finetune"]


def case(kind: str) -> dict[str, Any]:
    return json.loads((upstream_dir("epibert", kind, "case.json")).read_text())


def fixture_run(kind: str, variables: dict[str, Any], **given: Any) -> Run:
    """The run a user configures for the fixture: sizes from the checkpoint, the rest from case.json."""
    ctor = case(kind)["ctor"]
    sizes = weights.checkpoint_sizes({name: tuple(np.shape(v)) for name, v in variables.items()})
    dataset = {
        "input_length": ctor["input_length"],
        "output_res": ctor["input_length"] // ctor["output_length"],
        "atac_bin": 4,
        "max_shift": 4,
        "crop": (ctor["output_length"] - ctor["final_output_length"]) // 2,
        "mask_size": 512,
        "atac_mask_dropout": 0.15,
        "n_motifs": sizes.pop("n_motifs"),
    }
    arch = {**ARCH, **sizes, "num_heads": ctor["num_heads"], "seed": ctor["seed"], **given}
    return Run(family="epibert", dataset_name="K562", arch_name=kind, dataset=dataset, arch=arch, train={})


def loaded_port(run: Run, variables: dict[str, np.ndarray]) -> torch.nn.Module:
    port = model.build(run)
    load_mapped(port, weights.weight_map(run).apply(variables, target_spec(port)))
    return port.eval()


@pytest.mark.parametrize("kind", KINDS)
def test_projection_matrix_is_upstreams_without_tensorflow(kind: str) -> None:
    with np.load(upstream_dir("epibert", kind, "probe.npz")) as probe:
        expected = probe["aux_projection_matrix"]
    drawn = favor.projection_matrix(favor.NB_RANDOM_FEATURES, expected.shape[1], case(kind)["ctor"]["seed"])
    assert drawn.shape == expected.shape == (256, case(kind)["performer"]["size_per_head"])
    # float32 QR in TF vs float64 here: equal to a few float32 ulps of the largest entry (|x| ~ 3.7)
    np.testing.assert_allclose(drawn, expected, rtol=0, atol=2e-5)
    other = favor.projection_matrix(256, expected.shape[1], case(kind)["ctor"]["seed"] + 1)
    assert np.abs(other - expected).max() > 0.5


def test_stateless_normal_moments() -> None:
    draw = favor.stateless_normal((200, 50), (3, 2))
    assert draw.dtype == np.float32 and abs(draw.mean()) < 0.02 and abs(draw.std() - 1) < 0.02
    np.testing.assert_array_equal(draw, favor.stateless_normal((200, 50), (3, 2)))


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_folder_gives_the_model_variables_and_sizes(kind: str) -> None:
    folder = upstream_dir("epibert", kind, "ckpt")
    variables = weights.read_source(None, folder)  # type: ignore[arg-type]
    info = case(kind)
    assert len(variables) == info["saved"]["n_model_variables"]  # no optimizer slots, no bookkeeping
    shapes = weights.upstream_shapes(folder)
    assert shapes == {name: v.shape for name, v in variables.items()}  # the index alone gives the same
    sizes = weights.checkpoint_sizes(shapes)
    ctor = info["ctor"]
    assert sizes["filter_list_seq"] == ctor["filter_list_seq"]
    assert sizes["filter_list_atac"] == ctor["filter_list_atac"]
    assert sizes["num_layers"] == ctor["num_transformer_layers"]
    assert sizes["motif_units_fc"] == ctor["motif_units_fc"]
    assert sizes["final_point_scale"] == ctor["final_point_scale"]
    assert sizes["n_motifs"] == info["n_motifs"]
    assert sizes["mode"] == kind
    assert sizes["num_heads"] == ctor["num_heads"]  # the attention kernels' middle axis


def test_a_chosen_checkpoint_and_a_foreign_variable(tmp_path: Path) -> None:
    folder = upstream_dir("epibert", "pretrain", "ckpt")
    latest = weights.read_source(None, folder)  # type: ignore[arg-type]
    for chosen in (folder / "ckpt-1", folder / "ckpt-1.index"):
        chosen_vars = weights.read_source(None, chosen)  # type: ignore[arg-type]
        assert chosen_vars.keys() == latest.keys()
    copy = tmp_path / "ckpt"
    shutil.copytree(folder, copy)
    (copy / "checkpoint").write_text('model_checkpoint_path: "ckpt-7"\n')
    with pytest.raises(FormatError, match="ckpt-7"):
        weights.read_source(None, copy)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
def test_port_eager_and_traced_return_upstreams_outputs_in_its_order(kind: str) -> None:
    variables = weights.read_source(None, upstream_dir("epibert", kind, "ckpt"))  # type: ignore[arg-type]
    run = fixture_run(kind, variables)
    assert run.arch["attention"] == "performer"
    port = loaded_port(run, variables)
    probe = upstream_dir("epibert", kind, "probe.npz")
    names = ["out"] if kind == "pretrain" else ["out_atac", "out_rna"]
    inputs, expected = recorded.probe_arrays(probe)
    assert list(inputs) == ["sequence", "atac", "motif_activity"] and list(expected) == names
    errors = upstream.check_outputs(run, port, probe)  # shapes and order checked, each output's error
    assert list(errors) == names and max(errors.values()) < 1e-5
    traced = torch.jit.trace(port, model.parity_inputs(inputs))
    assert list(upstream.check_outputs(run, traced, probe)) == names
    if kind == "finetune":  # the order matters: the heads swapped are far off

        def swapped(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return port(*args)[::-1]

        with pytest.raises(ParityError, match="out_atac"):
            upstream.check_outputs(run, swapped, probe)


@pytest.mark.parametrize(
    ("given", "named"), [({"num_heads": 8}, "num_heads (8;"), ({"seed": 19}, "seed (19;")]
)
def test_wrong_heads_or_seed_fail_parity_saying_so(given: dict[str, int], named: str) -> None:
    variables = weights.read_source(None, upstream_dir("epibert", "pretrain", "ckpt"))  # type: ignore[arg-type]
    run = fixture_run("pretrain", variables, **given)
    port = loaded_port(run, variables)  # loads: neither value is in the checkpoint
    with pytest.raises(ParityError, match=re.escape(named)):
        upstream.check_outputs(run, port, upstream_dir("epibert", "pretrain", "probe.npz"))


def test_exact_softmax_stays_selectable() -> None:
    variables = weights.read_source(None, upstream_dir("epibert", "pretrain", "ckpt"))  # type: ignore[arg-type]
    run = fixture_run("pretrain", variables, attention="softmax")
    port = loaded_port(run, variables)
    assert not hasattr(port.layers[0].attention, "projection")
    with pytest.raises(ParityError):
        upstream.check_outputs(run, port, upstream_dir("epibert", "pretrain", "probe.npz"))


# ------------------------------------------------------------------------------ the TF side (a child)
TF_RESTORE = """
import json, sys
import numpy as np
from tf2lightning.core.tf_checkpoint import resolve_checkpoint_prefix
from tf2lightning.errors import FormatError
from tf2lightning.families.epibert import tf_upstream
from tf2lightning.families.epibert.geometry import geometry
from tf2lightning.run import Run
assert "torch" not in sys.modules, "the TF side imported torch"
out = {}
for kind, run_json in json.loads(sys.argv[1]).items():
    run, root = Run(**run_json), sys.argv[2] + "/" + kind
    model = tf_upstream.build(geometry(run), dict(run.arch))
    tf_upstream.restore(model, resolve_checkpoint_prefix(root + "/ckpt"))
    probe = np.load(root + "/probe.npz")
    inputs = (probe["input_0_sequence"], probe["input_1_atac"], probe["input_2_motif_activity"])
    got = model(inputs, training=False)
    got = got if isinstance(got, tuple) else (got,)
    names = sorted(k for k in probe if k.startswith("output_"))
    out[kind] = {
        "n_variables": len(model.variables),
        "errors": {
            k: float(np.abs(g.numpy() - probe[k]).max() / np.abs(probe[k]).max()) for k, g in zip(names, got)
        },
    }
# a model the checkpoint does not fit (one more transformer layer) is refused, not half-restored
run = Run(**json.loads(sys.argv[1])["pretrain"])
bigger = tf_upstream.build(geometry(run), {**run.arch, "num_layers": 3})
try:
    tf_upstream.restore(bigger, resolve_checkpoint_prefix(sys.argv[2] + "/pretrain/ckpt"))
    out["refused"] = ""
except FormatError as error:
    out["refused"] = str(error)
other_heads = tf_upstream.build(geometry(run), {**run.arch, "num_heads": 8})
try:
    tf_upstream.restore(other_heads, resolve_checkpoint_prefix(sys.argv[2] + "/pretrain/ckpt"))
    out["heads"] = ""
except FormatError as error:
    out["heads"] = str(error)
# the workflow's reference stage on the checkpoint folder, which has upstream's probe.npz beside it
from pathlib import Path
from tf2lightning.families.epibert import legacy
for seed in (21, 19):
    seeded = Run(**{**json.loads(sys.argv[1])["pretrain"], "arch": {**run.arch, "seed": seed}})
    out_h5 = Path(sys.argv[3]) / f"reference_seed{seed}.h5"
    legacy.upstream_reference(seeded, Path(sys.argv[2]) / "pretrain" / "ckpt", Path("unused"), out_h5)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def tf_side(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """One TF child: restores and upstream's outputs for both models, refusals, and the pretraining
    model's reference files (Performer seed 21, upstream's, and 19) in the returned folder."""
    from tests.tfside import run_tf
    from tf2lightning.run import run_to_dict

    runs = {}
    for kind in KINDS:
        variables = weights.read_source(None, upstream_dir("epibert", kind, "ckpt"))  # type: ignore[arg-type]
        runs[kind] = run_to_dict(fixture_run(kind, variables))
    folder = tmp_path_factory.mktemp("epibert_tf_side")
    result = run_tf(TF_RESTORE, json.dumps(runs), upstream_dir("epibert"), folder).splitlines()[-1]
    return json.loads(result), folder


def test_tf_side_restores_every_variable_and_reproduces_upstream(
    tf_side: tuple[dict[str, Any], Path],
) -> None:
    result, _ = tf_side
    for kind in KINDS:
        assert result[kind]["n_variables"] == case(kind)["saved"]["n_model_variables"]
        errors = result[kind]["errors"]
        assert len(errors) == (1 if kind == "pretrain" else 2)
        assert max(errors.values()) < 1e-5, errors
    assert "does not bind every variable" in result["refused"]
    assert "does not fit the model (num_heads" in result["heads"] and "(64, 4, 16)" in result["heads"]


def test_a_wrong_seed_fails_the_parity_stage_naming_it(
    tf_side: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    """The rebuild with the wrong seed agrees with the port layer by layer; upstream's recorded outputs
    (the reference's outputs, since probe.npz is beside the checkpoint) do not."""
    from tf2lightning.core.reference_file import read_reference
    from tf2lightning.stages.parity import check_parity
    from tf2lightning.stages.weights import convert_weights

    _, folder = tf_side
    ckpt = upstream_dir("epibert", "pretrain", "ckpt")
    variables = weights.read_source(None, ckpt)  # type: ignore[arg-type]
    parity = {"atol": 1e-5, "rtol": 1e-6}
    for seed in (21, 19):
        reference = read_reference(folder / f"reference_seed{seed}.h5")
        _, recorded_outputs = recorded.probe_arrays(upstream_dir("epibert", "pretrain", "probe.npz"))
        assert reference.attrs[recorded.REFERENCE_ATTR].endswith("pretrain/probe.npz")
        np.testing.assert_array_equal(reference.outputs["out"], recorded_outputs["out"])
        assert len(reference.layers) >= 20
        run = fixture_run("pretrain", variables, seed=seed, legacy_model=str(ckpt))
        run = replace(run, parity=parity)
        weights_file = tmp_path / f"seed{seed}.safetensors"
        convert_weights(run, ckpt, "ckpt", weights_file)
        args = (run, folder / f"reference_seed{seed}.h5", [weights_file], tmp_path / f"parity{seed}.tsv")
        if seed == 21:
            check_parity(*args)
            continue
        with pytest.raises(ParityError) as failure:
            check_parity(*args)
        message = str(failure.value)
        assert "every compared layer is within tolerance" in message
        assert "upstream's recorded ones" in message and "the Performer seed (19;" in message
        assert "num_heads (4;" in message


# ------------------------------------------------------------------- sizes into the config, checked
def _section(**arch: Any) -> dict[str, Any]:
    folder = str(upstream_dir("epibert", "pretrain", "ckpt"))
    return {
        "datasets": {"upstream": {"cell_type": "K562"}},
        "archs": {"up": {"legacy_model": folder, "num_heads": 4, "seed": 21, **arch}},
    }


def test_sizes_come_from_the_checkpoint_into_the_config() -> None:
    from tf2lightning.families.epibert.configure import complete_section

    section = _section()
    complete_section(section, "families.epibert")
    arch = section["archs"]["up"]
    assert arch["filter_list_seq"] == case("pretrain")["ctor"]["filter_list_seq"]
    assert arch["num_layers"] == 2 and arch["mode"] == "pretrain" and arch["num_heads"] == 4
    assert section["datasets"]["upstream"]["n_motifs"] == 693
    complete_section(section, "families.epibert")  # idempotent: validation may run twice


def test_a_contradicting_or_missing_value_stops_the_config() -> None:
    from tf2lightning.errors import ConfigError
    from tf2lightning.families.epibert.configure import complete_section

    with pytest.raises(ConfigError, match=r"archs\.up\.num_layers is 4, but the checkpoint .* has 2"):
        complete_section(_section(num_layers=4), "families.epibert")
    with pytest.raises(ConfigError, match=r"archs\.up\.num_heads is 8, but the checkpoint .* has 4"):
        complete_section(_section(num_heads=8), "families.epibert")
    section = _section()
    del section["archs"]["up"]["seed"]
    with pytest.raises(ConfigError, match=r"archs\.up: give seed"):
        complete_section(section, "families.epibert")
    section = _section()
    section["datasets"]["upstream"]["n_motifs"] = 16
    with pytest.raises(
        ConfigError, match=r"datasets\.upstream\.n_motifs is 16, but the checkpoint .* has 693"
    ):
        complete_section(section, "families.epibert")


# ---------------------------------------------------------------------------------------- records
@pytest.mark.parametrize("folder", ["data", "data_rampage"])
def test_upstream_records_convert_to_exactly_their_values(folder: str, tmp_path: Path) -> None:
    import h5py

    from tf2lightning.families.epibert import data
    from tf2lightning.families.epibert.geometry import geometry

    root = upstream_dir("epibert", folder)
    info = json.loads((root / "data.json").read_text())
    dataset = {
        "cell_type": "K562",
        "input_length": info["input_length"],
        "output_res": info["output_res"],
        "atac_bin": info["output_res_atac"],
        "max_shift": info["shift_amt"],
        "crop": 2,
        "mask_size": 512,
        "atac_mask_dropout": 0.15,
        "n_motifs": info["n_motifs"],
    }
    run = Run(family="epibert", dataset_name="upstream", arch_name="", dataset=dataset, arch={}, train={})
    assert geometry(run).stored_length == info["input_length"] + 2 * info["shift_amt"]
    data.convert(run, root, tmp_path / "data.h5")
    with np.load(root / "expected.npz") as expected, h5py.File(tmp_path / "data.h5", "r") as h5:
        splits = [data.SPLITS[i] for i in h5["split"][()]]
        for ours, theirs in (("train", "train"), ("val", "valid"), ("test", "test")):
            rows = [i for i, s in enumerate(splits) if s == ours]
            assert len(rows) == info["records"][theirs]
            features = {k.split("_", 1)[1] for k in expected if k.startswith(f"{theirs}_")}
            assert features <= set(h5) | {"sequence"}
            for feature in sorted(features):
                want, got = expected[f"{theirs}_{feature}"], h5[feature][rows]
                if feature == "sequence":  # ASCII in the records, codes A,C,G,T,N -> 0..4 here
                    want = data.CODE_OF_ASCII[want]
                want = want.reshape(got.shape)  # 0/1 flags (peaks, tss_tokens) are kept as uint8
                if feature in ("atac", "motif_activity", "rna", "interval", "cell_encoding"):
                    assert got.dtype == want.dtype, feature  # stored dtypes kept: float16 / float32, int32
                np.testing.assert_array_equal(got, want, err_msg=feature)


def test_dataset_placeholder_and_a_chosen_checkpoint_in_legacy_model() -> None:
    from tf2lightning.families.epibert.configure import complete_section

    root = upstream_dir("epibert")
    section: dict[str, Any] = {
        "datasets": {"pretrain": {"cell_type": "K562"}},
        "archs": {
            "each": {"legacy_model": str(root / "{dataset}" / "ckpt"), "num_heads": 4, "seed": 21},
            "chosen": {
                "legacy_model": str(root / "finetune" / "ckpt" / "ckpt-1"),
                "num_heads": 8,
                "seed": 19,
            },
        },
        "runs": [["pretrain", "each"], ["pretrain", "chosen"]],
    }
    complete_section(section, "families.epibert")
    assert section["archs"]["each"]["mode"] == "pretrain" and section["archs"]["chosen"]["mode"] == "finetune"
    assert section["datasets"]["pretrain"]["n_motifs"] == 693
