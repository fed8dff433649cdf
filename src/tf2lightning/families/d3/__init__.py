"""D3: score-entropy discrete diffusion (SEDD) for DNA, moved from its plain PyTorch loop onto Lightning.

Modules (see ``tf2lightning.families``): ``datasets`` (the dataset/architecture routing table) and
``synthetic`` (planted-motif grammars), numpy only; ``legacy`` (the plain PyTorch loop and the reference),
``runfolder`` (upstream run folders and checkpoints), ``reference_forward`` (upstream's forward in NumPy),
``model``, ``diffusion``, ``training``, ``lit``, ``checkpoint``, ``oracle``, ``sample`` and ``evaluate``,
torch; ``upstream`` (upstream's data files), ``data`` and ``weights``, no framework.
"""

from tf2lightning.families.spec import FamilySpec

SPEC = FamilySpec(
    legacy_framework="torch",
    weight_sources={"pth": "."},  # the run folder (or the checkpoint file) itself
    extra_inputs={
        "evaluate": {
            "oracle": "results/{family}/{dataset}/oracle/model.pt",
            "samples": "results/{family}/{dataset}_{arch}/samples.h5",
        }
    },
)
