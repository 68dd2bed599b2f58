"""Print the Snakemake outputs of every stage `dvc status` reports changed, one per line.

`make repro` passes them to `snakemake --forcerun`: Snakemake keeps its own record of the
parameters a job ran with, and has none for outputs another runner made (`dvc repro`, a DVC
checkout), so it would take those as up to date after a parameter edit, and `dvc commit -f`
would then record them under the new parameters. DVC's view decides what is stale; Snakemake
reruns those jobs and what follows them.

    python workflow/scripts/stale_outputs.py     # from the project root
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import PurePosixPath


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        sys.exit(f"stale_outputs: {' '.join(cmd[:3])} exited {proc.returncode}: {tail[0]}")
    return proc.stdout


def stale_dvc_outs() -> list[PurePosixPath]:
    """The declared outputs of the stages `dvc status` lists (changed deps, params, outs, code)."""
    from dvc.repo import Repo

    with Repo() as repo:
        stale = set(repo.status())
        return [
            PurePosixPath(str(out.def_path))
            for stage in repo.index.stages
            if stage.addressing in stale
            for out in stage.outs
        ]


def snakemake_outputs() -> list[PurePosixPath]:
    """Every output file or folder of the Snakemake workflow (`snakemake --summary`)."""
    lines = _run(["snakemake", "--summary", "--cores", "1", "--quiet", "all"]).splitlines()
    return [PurePosixPath(line.split("\t")[0]) for line in lines[1:] if line.strip()]


def under(path: PurePosixPath, roots: list[PurePosixPath]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def main() -> None:
    roots = stale_dvc_outs()
    if roots:
        print("\n".join(str(p) for p in snakemake_outputs() if under(p, roots)))


if __name__ == "__main__":
    main()
