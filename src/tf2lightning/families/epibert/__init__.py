"""EpiBERT: a multimodal rotary transformer for masked-ATAC pretraining (sequence + ATAC + motif activity),
fine-tuned to an expression profile (see ``modes``).

Modules (see ``tf2lightning.families``): ``geometry``, ``draws``, ``synthetic``, ``modes`` and
``published`` (numpy or less); ``legacy`` and ``tfdata`` (TensorFlow/Keras only); ``model``, ``augment``,
``loss``, ``datamodule``, ``lit``, ``evaluate`` and ``throughput`` (torch only); ``weights`` and ``data``
(no framework).
"""

from tf2lightning.families.epibert.configure import complete_section
from tf2lightning.families.epibert.modes import pretrained_input
from tf2lightning.families.spec import FamilySpec

SPEC = FamilySpec(
    legacy_framework="tensorflow",
    # the legacy model directory is a checkpoint folder (``checkpoint`` + ``ckpt-N.*``), upstream's or ours
    weight_sources={"ckpt": "."},
    extra_inputs={"train": pretrained_input},
    configure=complete_section,
)
