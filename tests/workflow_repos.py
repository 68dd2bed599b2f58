"""Scratch git repositories holding a copy of the project on the tiny parameters.

The end-to-end workflow tests (DVC, Snakemake, Slurm, DVC remote) each run in such a copy:
the project's tracked and untracked-not-ignored files, without generated outputs, with
params.yaml replaced by tests/params-tiny.yaml, committed to a fresh git repository.
The `dvc repro` run is done once per test session and shared (read-only: copy it to change it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "params-tiny.yaml"
GENERATED = ("data/", "models/", "results/", "logs/", "dvc.lock")
ENV = {
    "DVC_NO_ANALYTICS": "1",
    "DKP_NO_PROGRESS": "1",
    "GIT_AUTHOR_NAME": "dkp tests",
    "GIT_AUTHOR_EMAIL": "tests@dkp.invalid",
    "GIT_COMMITTER_NAME": "dkp tests",
    "GIT_COMMITTER_EMAIL": "tests@dkp.invalid",
}


def env() -> dict:
    out = dict(os.environ, **ENV)
    out["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{out['PATH']}"
    return out


def sh(
    cmd: list[str] | str,
    cwd: Path,
    timeout: float = 600,
    check: bool = True,
    extra_env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run a command; on failure raise with its output tail and the tails of logs/*.log.

    In a scratch copy, `dkp` imports the copy's own src/ (not the checkout the .venv's
    editable install points to), so edits made meanwhile in the checkout cannot leak in."""
    run_env = env()
    if (Path(cwd) / "src" / "dkp").is_dir() and Path(cwd).resolve() != REPO:
        run_env["PYTHONPATH"] = str(Path(cwd).resolve() / "src")
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        shell=isinstance(cmd, str),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(run_env, **(extra_env or {})),
    )
    if check and proc.returncode != 0:
        logs = "".join(
            f"\n--- {p.relative_to(cwd)}\n{p.read_text()[-1500:]}"
            for p in sorted((cwd / "logs").rglob("*.log"))
            if p.stat().st_size
        )
        raise AssertionError(
            f"{cmd!r} exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
            f"\n--- stderr\n{proc.stderr[-3000:]}{logs}"
        )
    return proc


def project_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(
        f for f in out.split("\0") if f and not f.startswith(GENERATED) and (REPO / f).is_file()
    )


def make_repo(dest: Path, params: Path = TINY) -> Path:
    """A fresh git repository at dest with the project files and params.yaml = `params`."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in project_files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)
    shutil.copy(params, dest / "params.yaml")
    sh(["git", "init", "-q", "-b", "main"], dest)
    sh(["git", "add", "-A"], dest)
    sh(["git", "commit", "-q", "-m", "project on the tiny parameters"], dest)
    return dest


def dvc_reproduced(tmp_path_factory) -> tuple[Path, float]:
    """(repository where `dvc repro` ran on the tiny params, seconds it took). Built once a
    session by the fixture conftest.tiny_dvc_repro, which the tests take."""
    repo = make_repo(tmp_path_factory.mktemp("dvc-run"))
    start = time.monotonic()
    sh(["dvc", "repro"], repo, timeout=900)
    seconds = time.monotonic() - start
    print(f"\n[timing] dvc repro on the tiny params: {seconds:.1f} s")
    return repo, seconds


def dvc_status(repo: Path) -> dict:
    """`dvc status --json` as a dict: stage name -> what changed (empty when up to date)."""
    import json

    return json.loads(sh(["dvc", "status", "--json"], repo).stdout or "{}")


def stages_run(output: str) -> list[str]:
    """Stage names a `dvc repro` output says it ran."""
    return [
        line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")
    ]
