"""Clair3: the pileup (``Clair3_P``, BiLSTM) and full-alignment (``Clair3_F``, residual CNN) variant callers.

Datasets are sequencing platforms (``ont`` depth 89, ``hifi`` depth 55; the platform config holds the
tensor sizes), architectures are the two networks ``P`` and ``F``. Modules (see ``tf2lightning.families``):
``labels``, ``platform``, ``synthetic`` and ``bin_format`` (numpy / PyTables only), ``legacy``
(TensorFlow/Keras only), ``model``, ``lit``, ``datamodule``, ``evaluate`` and ``call`` (torch only),
``weights`` and ``data`` (no framework).
"""

from tf2lightning.families.spec import FamilySpec

# ``legacy_model`` itself is the source: a released model folder, a checkpoint prefix (``.index``) or a
# Train.py SavedModel folder; ``weights.read_source`` finds the network's checkpoint in it.
SPEC = FamilySpec(legacy_framework="tensorflow", weight_sources={"ckpt": "."})
