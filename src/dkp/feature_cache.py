"""The read side of the per-frame feature cache `dkp features` writes (data/features/seed-N/,
one folder per frame shard): FeatureCache reads the shards as one cache ordered by id.

Each shard folder holds <backbone>.npy (float32, rows of a video contiguous), times.npy,
index.csv (INDEX_COLUMNS), meta.json (backbone names and feature sizes) and costs.json (the
modules' MACs, dkp.flops.CostModel.counts).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import layout
from .errors import DkpError

INDEX_COLUMNS = ["id", "offset", "n_frames", "duration", "label_index"]


class _Shard:
    """One shard folder of a feature cache: its index, timestamps and feature sizes."""

    def __init__(self, folder: Path):
        if not all((folder / f).exists() for f in ("index.csv", "meta.json", "costs.json")):
            raise DkpError(
                f"feature cache {folder}/ not found or incomplete (run `dkp features` first)"
            )
        self.folder = folder
        self.dims = {
            name: int(d)
            for name, d in json.loads((folder / "meta.json").read_text())["backbones"].items()
        }
        self.costs = json.loads((folder / "costs.json").read_text())
        self.index = pd.read_csv(folder / "index.csv", dtype={"id": str})
        self.times = np.load(folder / "times.npy")
        if len(self.times) != int(self.index["n_frames"].sum()):
            raise DkpError(
                f"feature cache {folder}/ is inconsistent (times.npy vs index.csv); rerun "
                "`dkp features`"
            )


class FeatureCache:
    """Read side of a feature cache (data/features/seed-N/, `shards` shard folders) as one cache:
    `index` lists every video sorted by id, `offset` its first row in a virtual concatenation
    in that order, and `times` holds the timestamps of those rows.

    `rows` maps a feature file only for the duration of one read, so the pages it
    touched leave the process with the map: resident memory stays one block, however
    large the cache (a map held open would keep every page read so far resident).
    """

    def __init__(self, folder: str | Path, shards: int):
        self.folder = Path(folder)
        self.shards = [_Shard(self.folder / layout.shard_name(i)) for i in range(shards)]
        filled = [s for s in self.shards if len(s.index)]
        self.dims = filled[0].dims if filled else {}
        if any(s.dims != self.dims for s in filled):
            raise DkpError(
                f"feature cache {self.folder}/: shards hold different backbones or feature sizes; "
                f"rerun `dkp features`"
            )
        self.costs = self.shards[0].costs
        if any(s.costs != self.costs for s in self.shards):
            raise DkpError(
                f"feature cache {self.folder}/: shards were embedded by different modules "
                "(their costs.json differ); rerun `dkp features`"
            )
        parts = [
            s.index.assign(shard=i, local=s.index["offset"]) for i, s in enumerate(self.shards)
        ]
        index = (
            pd.concat(parts, ignore_index=True)
            .sort_values("id", kind="stable")
            .reset_index(drop=True)
        )
        n = index["n_frames"].to_numpy(np.int64)
        index["offset"] = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64) if len(n) else n
        self._shard = index["shard"].to_numpy(np.int64)
        self._local = index["local"].to_numpy(np.int64)
        self.index = index[INDEX_COLUMNS]
        self._offsets = index["offset"].to_numpy(np.int64)
        self._n = n
        self.times = np.concatenate(
            [np.zeros(0)]
            + [self.shards[k].times[lo : lo + c] for k, lo, c in zip(self._shard, self._local, n)]
        )

    def rows(self, name: str, spans: list[slice]) -> np.ndarray:
        """A copy of the rows of `spans` (slices of the frame axis, each within one video),
        concatenated."""
        self.require([name])
        arrays: dict[int, np.ndarray] = {}
        out = []
        try:
            for sp in spans:
                v = int(np.searchsorted(self._offsets, sp.start, side="right")) - 1
                if v < 0 or sp.stop > self._offsets[v] + self._n[v]:
                    raise ValueError(
                        f"rows {sp.start}..{sp.stop - 1} are not within one video of the cache"
                    )
                lo = int(self._local[v]) + sp.start - int(self._offsets[v])
                k = int(self._shard[v])
                if k not in arrays:
                    arrays[k] = np.load(self.shards[k].folder / f"{name}.npy", mmap_mode="r")
                out.append(arrays[k][lo : lo + sp.stop - sp.start])
            return np.concatenate(out) if out else np.zeros((0, self.dims[name]), np.float32)
        finally:
            del out, arrays  # unmaps: the pages read are released with them

    def require(self, names) -> None:
        missing = sorted(set(names) - set(self.dims))
        if missing:
            raise DkpError(
                f"feature cache {self.folder}/ lacks backbones {missing}; rerun `dkp features`"
            )

    def __len__(self) -> int:
        return len(self.index)
