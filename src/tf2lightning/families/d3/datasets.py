"""The routing table of the D3 family: each dataset's length, activities, upstream file and grammar.

One table, no per-dataset subclasses: every stage looks its dataset up here (numpy only). A dataset's
``kind`` in the config picks the row, so a config may name its datasets freely.
"""

from __future__ import annotations

from dataclasses import dataclass

from tf2lightning.errors import ConfigError
from tf2lightning.run import Run

NUCLEOTIDES = "ACGT"


@dataclass(frozen=True)
class DatasetKind:
    """One upstream dataset.

    ``layout`` names the upstream file layout (see ``legacy``): ``deepstarr`` (``X_*`` one-hot ``(N, 4, L)``,
    ``Y_*``), ``mpra`` (``x_*`` one-hot ``(N, L, 4)``, ``y_*``) or ``promoter`` (NPZ items ``(N, L, 6)``:
    one-hot plus two signal tracks). ``motifs`` are planted, one per activity; ``oracle`` picks upstream's
    oracle network (``oracle_nets``) and ``oracle_columns`` the activities it predicts (upstream's MPRA oracle
    predicts ``y[:, 2]``; promoter's upstream oracle is Sei, for which the demo stands in a DeepSTARR net).
    ``max_count`` and ``forward_fraction`` shape the grammar (``synthetic``): dense, mostly forward copies
    are what a demo-sized diffusion model learns in a few hundred steps (README, D3).
    """

    length: int
    activities: tuple[str, ...]
    file: str
    layout: str
    motifs: tuple[str, ...]
    oracle: str
    oracle_columns: tuple[int, ...] = (0,)
    max_count: int = 3
    forward_fraction: float = 0.5


KINDS: dict[str, DatasetKind] = {
    "deepstarr": DatasetKind(
        length=249,
        activities=("dev", "hk"),
        file="DeepSTARR_data.h5",
        layout="deepstarr",
        motifs=("TGACTCAT", "CGGAAGTG"),
        oracle="deepstarr",
        oracle_columns=(0, 1),
        max_count=8,
        forward_fraction=0.8,
    ),
    "mpra": DatasetKind(
        length=200,
        activities=("HepG2", "K562", "WTC11"),
        file="mpra_data.h5",
        layout="mpra",
        motifs=("CACGTGAC", "TTGCGCAA", "GGGGCGGA"),
        oracle="mpra",
        oracle_columns=(2,),
        max_count=5,
        forward_fraction=0.8,
    ),
    "promoter": DatasetKind(
        length=1024,
        activities=("expression",),
        file="promoter_items.npz",
        layout="promoter",
        motifs=("TATAAAAG",),
        oracle="deepstarr",  # a stand-in: upstream scores promoters with Sei (H3K4me3)
        max_count=24,
        forward_fraction=0.8,
    ),
}


def label_shape(kind: DatasetKind) -> tuple[int, ...]:
    """Upstream's per-sequence label: the activities, or promoter's ``(L, 1)`` signal track."""
    return (kind.length, 1) if kind.layout == "promoter" else (len(kind.activities),)


def activity_of(kind: DatasetKind, labels):
    """Labels ``(N, *label_shape)`` -> activities ``(N, n_act)`` (promoter: the track's total)."""
    return labels.sum(1) if kind.layout == "promoter" else labels


def dataset_kind(run: Run) -> DatasetKind:
    """The table row of ``run``'s dataset (its ``kind``, by default the dataset's name)."""
    kind = run.dataset.get("kind") or run.dataset_name
    if kind not in KINDS:
        raise ConfigError(
            f"config key families.d3.datasets.{run.dataset_name}.kind: {kind!r} is not one of {sorted(KINDS)}"
        )
    return KINDS[kind]
