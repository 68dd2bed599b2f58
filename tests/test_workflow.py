"""dvc.yaml and the Snakefile are one graph, and each stage declares exactly what it reads.

Fast tests read the two graphs (dvc.yaml, `dvc dag`, `snakemake --rulegraph` and a forced
dry run) and audit the source. The slow test runs the tiny pipeline with `dvc repro` in one
scratch repository and `snakemake --cores 4` (two jobs at a time) in another and compares them.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import workflow_audit as audit
import yaml
from workflow_repos import REPO, TINY, dvc_status, make_repo, sh, stages_run

# Snakemake jobs fanned out beyond DVC's stages: the flag each job adds to the DVC command
FANOUT = {"frames": "--shard", "features": "--shard", "sweep": "--group"}
PER_SEED = ["train-teacher", "train-student", "features", "sweep"]
REDIRECT = re.compile(r" > (logs/\S+\.log) 2>&1$")


def base_name(stage: str) -> str:
    """The dvc.yaml stage of an expanded foreach stage name (`sweep@1` -> `sweep`)."""
    return stage.split("@")[0]


def rule_name(stage: str) -> str:
    return base_name(stage).replace("-", "_")


def dvc_stages(repo: Path) -> dict:
    """dvc.yaml stages with ${...} resolved from params.yaml, foreach stages expanded as DVC
    names them (`train-teacher@0`, one per item), each with its `base` stage name."""
    params = yaml.safe_load((repo / "params.yaml").read_text())

    def resolve(text: str, item=None) -> str:
        def value(m):
            if m.group(1) == "item":
                return str(item)
            node = params
            for part in m.group(1).split("."):
                node = node[part]
            return str(node)

        return re.sub(r"\$\{([\w.]+)\}", value, text)

    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, st in stages.items():
        if "foreach" in st:
            items = (
                yaml.safe_load(resolve(st["foreach"]))
                if isinstance(st["foreach"], str)
                else st["foreach"]
            )
            expanded = [(f"{name}@{item}", st["do"], item) for item in items]
        else:
            expanded = [(name, st, None)]
        for full, body, item in expanded:
            outs = [next(iter(o)) if isinstance(o, dict) else o for o in body.get("outs", [])]
            out[full] = {
                "base": name,
                "cmd": resolve(body["cmd"], item),
                "deps": [resolve(d, item) for d in body["deps"]],
                "params": body.get("params", []),
                "outs": [resolve(o, item) for o in outs],
            }
    return out


def dry_run_jobs(repo: Path) -> list[dict]:
    """Jobs of a forced Snakemake dry run: rule, inputs, outputs, log and shell command."""
    text = sh(["snakemake", "-n", "-p", "--forceall", "--cores", "2"], repo).stdout
    jobs, job = [], None
    for line in text.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            job = {"rule": m.group(1), "input": [], "output": [], "log": [], "shell": None}
            jobs.append(job)
            continue
        m = re.match(r"^    (input|output|log): (.*)$", line)
        if job and m:
            job[m.group(1)] = m.group(2).split(", ")
        elif job and line.startswith("Shell command: "):
            job["shell"] = line[len("Shell command: ") :]
    return jobs


def dot_edges(dot: str, names: dict[str, str] | None = None) -> set[tuple[str, str]]:
    """Edges of a DOT graph; `names` maps node ids to labels (Snakemake's rulegraph)."""
    edges = set()
    for a, b in re.findall(r'^\s*"?([\w@-]+)"?\s*->\s*"?([\w@-]+)"?', dot, re.M):
        edges.add(((names or {}).get(a, a), (names or {}).get(b, b)))
    return edges


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return make_repo(tmp_path_factory.mktemp("graph"))


def test_snakemake_lint_reports_nothing(scratch):
    proc = sh(["snakemake", "--lint"], scratch)
    assert "Lint for" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_same_stages_and_edges(scratch):
    stages = dvc_stages(scratch)
    dvc_edges = {
        (rule_name(a), rule_name(b))
        for a, b in dot_edges(sh(["dvc", "dag", "--dot"], scratch).stdout)
    }
    dot = sh(["snakemake", "--rulegraph"], scratch).stdout
    labels = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, re.M))
    smk_edges = {(a, b) for a, b in dot_edges(dot, labels) if "all" not in (a, b)}
    assert set(labels.values()) - {"all"} == {rule_name(s) for s in stages}
    assert smk_edges == dvc_edges


def test_per_seed_stages_fan_out_in_both_graphs(scratch):
    """Training, features and sweep run once per seed of run.seeds in both runners (Snakemake runs
    features also per frame shard and the sweep per configuration group), each seed writing its
    own folders; the rest runs once."""
    params = yaml.safe_load((scratch / "params.yaml").read_text())
    seeds = params["run"]["seeds"]
    assert len(seeds) >= 2, "the tiny params must hold several seeds for this test to mean anything"
    sys.path.insert(0, str(REPO / "src"))
    from dkp.configs import groups

    listed = [line.split()[0] for line in sh(["dvc", "stage", "list"], scratch).stdout.splitlines()]
    for stage in PER_SEED:
        assert [s for s in listed if base_name(s) == stage] == [f"{stage}@{n}" for n in seeds], (
            listed
        )
    assert {"synthesize", "data", "frames", "data-report", "evaluate", "figures"} <= set(listed)
    jobs = [j for j in dry_run_jobs(scratch) if j["rule"] != "all"]
    for stage in PER_SEED:
        mine = [j for j in jobs if j["rule"] == rule_name(stage)]
        per_seed = {n: [j for j in mine if f" --seed {n} " in j["shell"]] for n in seeds}
        want = {"sweep": len(groups(params)), "features": params["frames"]["shards"]}.get(stage, 1)
        assert {n: len(js) for n, js in per_seed.items()} == {n: want for n in seeds}, stage
        assert sum(map(len, per_seed.values())) == len(mine), stage
        for n, js in per_seed.items():
            for j in js:
                assert all(f"seed-{n}" in o for o in j["output"]), (stage, n, j["output"])
                data_in = [i for i in j["input"] if i.startswith(("models/", "data/features/"))]
                assert all(f"seed-{n}" in i for i in data_in), (stage, n, data_in)
        if stage == "sweep":
            assert sorted(j["output"][0] for j in mine) == sorted(
                f"results/predictions/seed-{n}/{g}" for n in seeds for g in groups(params)
            )
        if stage == "features":
            assert sorted(j["output"][0] for j in mine) == sorted(
                f"data/features/seed-{n}/shard-{i}"
                for n in seeds
                for i in range(params["frames"]["shards"])
            )
    for rule in ("synthesize", "data", "data_report", "evaluate", "figures"):
        assert len([j for j in jobs if j["rule"] == rule]) == 1, rule


def test_a_seed_outside_run_seeds_is_one_line(scratch):
    proc = sh(
        ["dkp", "train-teacher", "--params", "params.yaml", "--seed", "7"], scratch, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "dkp train-teacher: invalid parameter: --seed: expected one of run.seeds [0, 1], found 7"
    )
    assert not (scratch / "models").exists()


def test_same_command_outputs_and_logs_per_stage(scratch):
    stages = dvc_stages(scratch)
    params = yaml.safe_load((scratch / "params.yaml").read_text())
    sys.path.insert(0, str(REPO / "src"))
    from dkp.configs import groups

    jobs = [j for j in dry_run_jobs(scratch) if j["rule"] != "all"]
    shards = [f"{i}/{params['frames']['shards']}" for i in range(params["frames"]["shards"])]
    # features: one job per (seed, frame shard), as frames has one per shard
    fanned = {"frames": shards, "features": shards, "sweep": groups(params)}
    produced = {o for s in stages.values() for o in s["outs"]}
    for base in dict.fromkeys(st["base"] for st in stages.values()):
        mine_stages = [st for st in stages.values() if st["base"] == base]
        mine = [j for j in jobs if j["rule"] == rule_name(base)]
        commands, outs = [], set()
        dvc_outs = {o for st in mine_stages for o in st["outs"]}
        for j in mine:
            m = REDIRECT.search(j["shell"] or "")
            assert m, f"{base}: shell must end with '> logs/<rule>.log 2>&1', found {j['shell']!r}"
            assert j["log"] == [m.group(1)], f"{base}: the command must write its rule's log"
            commands.append(j["shell"][: m.start()])
            for o in j["output"]:  # a fanned-out job's output lies inside its DVC stage's output
                outs.add(next((d for d in dvc_outs if o == d or o.startswith(d + "/")), o))
        if base in FANOUT:
            flag = FANOUT[base]
            assert sorted(commands) == sorted(
                f"{st['cmd']} {flag} {v}" for st in mine_stages for v in fanned[base]
            )
        else:
            assert sorted(commands) == sorted(st["cmd"] for st in mine_stages), base
        assert outs == dvc_outs, base
        for st in mine_stages:
            # the job(s) of this DVC stage: those writing inside its outputs
            own = [
                j
                for j in mine
                if any(o == d or o.startswith(d + "/") for o in j["output"] for d in st["outs"])
            ]
            assert own, (base, st["outs"])
            data_in = {i for j in own for i in j["input"] if not i.startswith("src/")}
            # every data input of the Snakemake job is a DVC dep of the stage or lies inside one
            # (the synthetic folder stands for data.annotations/videos)
            deps = set(st["deps"])
            for i in data_in:
                assert any(
                    i == d or i.startswith(d + "/") or d.startswith(i + "/") for d in deps
                ), (base, i)
            for d in deps - {d for d in deps if d.startswith("src/")}:
                if (
                    any(d == o or d.startswith(o + "/") or o.startswith(d + "/") for o in produced)
                    or Path(scratch, d).exists()
                ):
                    assert any(
                        d == i or d.startswith(i + "/") or i.startswith(d + "/") for i in data_in
                    ), (base, d)


def test_rule_all_asks_for_every_final_output(scratch):
    stages = dvc_stages(scratch)
    outs = {o for s in stages.values() for o in s["outs"]}
    consumed = {
        o
        for o in outs
        for s in stages.values()
        for d in s["deps"]
        if d == o or d.startswith(o + "/") or o.startswith(d + "/")
    }
    final = {o for o in outs - consumed if not o.startswith("results/train/")}
    jobs = dry_run_jobs(scratch)
    (all_job,) = [j for j in jobs if j["rule"] == "all"]
    assert set(all_job["input"]) >= final


def _leaves(params: dict, key: str) -> set[str]:
    node = params
    for part in key.split("."):
        node = node[part]
    if isinstance(node, dict):
        return {x for k in node for x in _leaves(params, f"{key}.{k}")}
    return {key}


def test_audit_sees_reads_through_aliases_loops_get_and_calls():
    import ast

    code = """
from . import helper
X = Path("results") / "x.csv"
def run(p, args):
    s = p["sweep"]
    for net in ("teacher", "student"):
        use(p[net]["arch"])
    if p["frames"]["fps"] > 30:
        raise ParamError(p["frames"]["size"])
    helper.go(p["figures"], s["s1"]["ratios"], p["dkp"].get("heads"), p["run"]["seeds"][0])
    return X, p[args.key]
def unused(p):
    return p["train"]
"""
    scan = audit._ModuleScan("dkp.fake", False)
    scan.visit(ast.parse(code))
    info = scan.info
    assert info.reads["run"] == {
        "teacher.arch",
        "student.arch",
        "figures",
        "sweep.s1.ratios",
        "dkp.heads",
        "run.seeds",
    }
    assert info.reads["unused"] == {"train"}
    assert any("<all>[?]" in d for d in info.dynamic["run"])
    assert ("helper", "go") in info.refs["run"] and info.consts == {"X": "results/x.csv"}


@pytest.mark.parametrize("stage", audit.PIPELINE_STAGES)
def test_stage_declares_exactly_the_params_code_and_files_it_uses(stage):
    sys.path.insert(0, str(REPO / "src"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    found = audit.stage_audit(stage)
    assert found.keys and found.files, f"{stage}: the audit found nothing (analysis broken?)"
    assert not found.dynamic, f"{stage}: parameter keys computed at run time: {found.dynamic}"
    st = next(st for st in dvc_stages(REPO).values() if st["base"] == stage)
    declared = {leaf for k in st["params"] for leaf in _leaves(params, k)}
    read = {leaf for k in found.keys for leaf in _leaves(params, k)}
    missing, extra = sorted(read - declared), sorted(declared - read)
    assert missing == [], f"{stage} reads params not listed in dvc.yaml: {missing}"
    assert extra == [], f"{stage}: dvc.yaml lists params the stage never reads: {extra}"
    code = [d for d in st["deps"] if d.startswith("src/")]
    covered = {f for f in found.files if any(f == d or f.startswith(d + "/") for d in code)}
    assert sorted(found.files - covered) == [], f"{stage} runs code not listed in its dvc.yaml deps"
    for d in code:
        assert any(f == d or f.startswith(d + "/") for f in found.files), (
            f"{stage}: dep {d} is code it never imports"
        )
    io = st["deps"] + st["outs"]
    unlisted = [
        p
        for p in found.paths
        if not any(p == d or p.startswith(d + "/") or d.startswith(p + "/") for d in io)
    ]
    assert unlisted == [], (
        f"{stage}'s code names files that are neither its deps nor its outs: {unlisted}"
    )


@pytest.mark.parametrize("stage", ["teacher", "student"])
def test_resume_key_hashes_exactly_the_code_dvc_yaml_lists(stage):
    """The training stages' code deps in dvc.yaml and the code their resume key hashes are one
    list."""
    from dkp.train.resume import STAGE_CODE

    st = next(st for st in dvc_stages(REPO).values() if st["base"] == f"train-{stage}")
    assert sorted(d for d in st["deps"] if d.startswith("src/")) == sorted(
        f"src/dkp/{c}" for c in STAGE_CODE[stage]
    )


MUTATIONS = [
    ("unknown key", lambda p: p["run"].update(seedd=1)),
    ("missing key", lambda p: p["frames"].pop("fps")),
    ("wrong type", lambda p: p["sweep"]["s1"].update(ratios="4")),
    ("out of range", lambda p: p["dkp"].update(dropout=1.0)),
    ("not in enum", lambda p: p["run"].update(device="tpu")),
    ("bad list item", lambda p: p["sweep"]["s2"]["nt5_ns"].append(0)),
    ("null where required", lambda p: p["figures"].update(dpi=None)),
    ("repeated seed", lambda p: p["run"].update(seeds=[0, 1, 0])),
    ("no seed", lambda p: p["run"].update(seeds=[])),
    ("negative seed", lambda p: p["run"].update(seeds=[-1])),
]


@pytest.mark.parametrize("what,change", [("valid", lambda p: None)] + MUTATIONS)
def test_snakemake_and_dkp_validate_params_alike(what, change):
    """The Snakefile validates with Snakemake's validator (JSON Schema 2020-12), dkp with
    Draft 7: the same schema must accept and reject the same files."""
    import copy

    import jsonschema
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema_path = REPO / "src" / "dkp" / "params.schema.yaml"
    params = yaml.safe_load(TINY.read_text())
    change(params)
    dkp_ok = not list(
        jsonschema.Draft7Validator(yaml.safe_load(schema_path.read_text())).iter_errors(params)
    )
    try:
        validate(copy.deepcopy(params), str(schema_path))
        smk_ok = True
    except WorkflowError:
        smk_ok = False
    assert dkp_ok == smk_ok == (what == "valid")


def test_snakemake_refuses_a_config_that_is_not_params_yaml(scratch, tmp_path):
    other = yaml.safe_load(TINY.read_text())
    other["run"]["seeds"] = [5]
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    proc = sh(
        ["snakemake", "-n", "--cores", "1", "--configfile", str(tmp_path / "other.yaml")],
        scratch,
        check=False,
    )
    assert proc.returncode != 0
    assert "edit params.yaml" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_dvc_repro_and_snakemake_give_the_same_results(tiny_dvc_repro, tmp_path_factory):
    dvc_repo, dvc_s = tiny_dvc_repro
    smk = make_repo(tmp_path_factory.mktemp("snakemake-run"))
    start = time.monotonic()
    # as on a machine of 2 GPUs (the CPU build of torch ignores them): each torch job takes one.
    # --cores 4: two 2-thread jobs at a time on the suite's 2 cores, a loaded machine, as the
    # determinism promise covers (README, Determinism): the outputs must still equal dvc repro's
    gpu_env = {"CUDA_VISIBLE_DEVICES": "0,1", "DKP_GPU_LOCKS": str(smk.parent / "gpu-locks")}
    sh(
        ["snakemake", "--profile", "workflow/profiles/default", "--cores", "4"]
        + ["--resources", "gpu=2"],
        smk,
        timeout=900,
        extra_env=gpu_env,
    )
    smk_s = time.monotonic() - start
    torch_logs = [
        *(smk / "logs").glob("train_*/*.log"),
        *(smk / "logs").glob("features/*/*.log"),
        *(smk / "logs").glob("sweep/*/*.log"),
    ]
    assert len(torch_logs) >= 4
    for log in torch_logs:  # what each job saw, before torch started
        seen = re.findall(
            r"^dkp [a-z-]+: GPU (\S+) of 0,1 \(CUDA_VISIBLE_DEVICES\)$", log.read_text(), flags=re.M
        )
        assert len(seen) == 1 and seen[0] in ("0", "1"), (log, log.read_text()[:500])
    print(f"\n[timing] dvc repro {dvc_s:.1f} s, snakemake --cores 4 {smk_s:.1f} s (tiny params)")
    for rel in ("results/metrics.json", "results/curves.csv"):
        assert (smk / rel).read_bytes() == (dvc_repo / rel).read_bytes(), rel
    sh(["snakemake", "--report", "results/report.html"], smk)
    assert b"s1.png" in (smk / "results" / "report.html").read_bytes()

    # cluster workflow: run with Snakemake, record with DVC; then nothing is left to do.
    # dvc commit rewrites cached outputs (new mtimes): --touch puts Snakemake's view back.
    sh(["dvc", "commit", "-f"], smk)
    assert dvc_status(smk) == {}
    assert stages_run(sh(["dvc", "repro"], smk).stdout) == []
    sh(["snakemake", "--touch", "--cores", "1"], smk)
    dry = sh(["snakemake", "-n", "--cores", "1"], smk)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    assert dvc_status(smk) == {}
    # every output the same bytes in both runners (README, Determinism) but the training logs,
    # whose `seconds` column is wall time: those equal without it
    same, differ = _compare_locks(dvc_repo, smk)
    assert same, "no output in dvc.lock"
    log = re.compile(r"results/train/seed-\d+/(teacher|student)\.csv")
    logs = [rel for rel in differ if log.fullmatch(rel)]
    assert differ == logs, f"outputs that differ between dvc repro and snakemake: {differ}"
    for rel in logs:
        a, b = (pd.read_csv(repo / rel).drop(columns="seconds") for repo in (dvc_repo, smk))
        pd.testing.assert_frame_equal(a, b, check_exact=True)

    # the same parameter edit invalidates the same stages in both runners; a new seed
    # adds its own jobs and leaves the other seeds' up to date
    seeds = yaml.safe_load(TINY.read_text())["run"]["seeds"]
    new = max(seeds) + 1
    for change, stale, jobs in [
        (
            lambda p: p["sweep"].update(batch_videos=p["sweep"]["batch_videos"] + 1),
            {f"sweep@{n}" for n in seeds},
            {"sweep": len(seeds) * len(_groups()), "evaluate": 1, "figures": 1},
        ),
        # a DKP configuration changes the pairs DKP is trained on (student.dkp_pairs) and may
        # raise the frames a video must have (frames.per_video_count: sweep): frames is stale in
        # both. DVC re-runs what follows only where frames' output hash changes; Snakemake, which
        # keeps no hashes, re-runs everything downstream of frames.
        (
            lambda p: p["sweep"]["s1"]["adaptive_nt"].append(7),
            {f"{st}@{n}" for n in seeds for st in ("train-student", "sweep")}
            | {"frames", "evaluate", "figures"},
            {
                "frames": _shards(),
                "data_report": 1,
                "train_teacher": len(seeds),
                "train_student": len(seeds),
                "features": len(seeds) * _shards(),
                "sweep": len(seeds) * len(_groups()),
                "evaluate": 1,
                "figures": 1,
            },
        ),
        (
            lambda p: p["run"]["seeds"].append(new),
            {f"{st}@{new}" for st in PER_SEED} | {"evaluate", "figures"},
            {
                "train_teacher": 1,
                "train_student": 1,
                "features": _shards(),
                "sweep": len(_groups()),
                "evaluate": 1,
                "figures": 1,
            },
        ),
    ]:
        for repo in (dvc_repo, smk):
            _edit_params(repo, change)
        try:
            assert set(dvc_status(dvc_repo)) == stale
            text = sh(["snakemake", "-n", "--profile", "workflow/profiles/default"], smk).stdout
            assert _job_counts(text) == jobs
        finally:
            for repo in (dvc_repo, smk):
                shutil.copy(TINY, repo / "params.yaml")
    assert dvc_status(dvc_repo) == {}


@pytest.mark.slow
def test_second_dvc_repro_does_nothing_and_declares_every_output(tiny_dvc_repro):
    repo, _ = tiny_dvc_repro
    proc = sh(["dvc", "repro"], repo)
    assert stages_run(proc.stdout) == [], proc.stdout
    outs = {o for s in dvc_stages(repo).values() for o in s["outs"]}
    for top in ("data", "models", "results"):
        for f in (repo / top).rglob("*"):
            rel = str(f.relative_to(repo))
            if f.is_file() and f.name != ".gitignore":
                assert any(rel == o or rel.startswith(o + "/") for o in outs), (
                    f"{rel} is no stage's output"
                )


@pytest.mark.slow
def test_make_repro_forces_the_stages_dvc_finds_stale(tiny_dvc_repro, tmp_path):
    """Outputs `dvc repro` made carry no Snakemake record of their parameters, so after a
    parameter edit Snakemake alone finds nothing to do (and `dvc commit -f` would record the old
    outputs under the new parameters). The list `make repro` passes to `--forcerun`
    (workflow/scripts/stale_outputs.py) names exactly the Snakemake outputs of the stages
    `dvc status` reports changed: nothing before the edit, every sweep output after it."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny_dvc_repro[0], repo, symlinks=True)
    script = ["python", "workflow/scripts/stale_outputs.py"]
    assert sh(script, repo).stdout.split() == []
    p = yaml.safe_load((repo / "params.yaml").read_text())
    p["sweep"]["batch_videos"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    dry = sh(["snakemake", "-n", "--cores", "1"], repo)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    seeds = p["run"]["seeds"]
    expected = {f"results/predictions/seed-{n}/{g}" for n in seeds for g in _groups()}
    assert set(sh(script, repo).stdout.split()) == expected
    assert set(dvc_status(repo)) == {f"sweep@{n}" for n in seeds}


@pytest.mark.slow
def test_dvc_metrics_and_plots_render(tiny_dvc_repro):
    repo, _ = tiny_dvc_repro
    metrics = json.loads(sh(["dvc", "metrics", "show", "--json"], repo).stdout)
    assert metrics, "dvc metrics show found no metrics"
    plots = json.loads(sh(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    for title, figure in [
        ("S-1 (DSTE sampling strategies)", "s1"),
        ("S-2 (number of sampled frames)", "s2"),
    ]:
        (plot,) = plots[title]
        rows = plot["content"]["data"]["values"]
        assert any(r.get("figure") == figure for r in rows), title
        assert plot["content"]["transform"][0]["filter"].startswith(f"datum.figure == '{figure}'")
    seeds = yaml.safe_load(TINY.read_text())["run"]["seeds"]
    logs = {
        f"results/train/seed-{n}/{stage}.csv" for n in seeds for stage in ("teacher", "student")
    }
    assert logs <= set(plots), sorted(plots)
    for log in logs:  # one plot per seed and stage, epochs along x
        rows = plots[log][0]["content"]["data"]["values"]
        assert {r["field"] for r in rows} == {"loss", "train_acc", "val_acc"}, log
        assert {r["epoch"] for r in rows} >= {"1", "2"}, log


def _groups() -> list[str]:
    sys.path.insert(0, str(REPO / "src"))
    from dkp.configs import groups

    return groups(yaml.safe_load(TINY.read_text()))


def _shards() -> int:
    return yaml.safe_load(TINY.read_text())["frames"]["shards"]


def _job_counts(dry_run: str) -> dict[str, int]:
    """Jobs per rule (without `all`) in a Snakemake dry run's job table."""
    table = re.search(r"^job\s+count\n[-\s]+\n(.*?)^total", dry_run, re.M | re.S)
    assert table, dry_run
    counts = dict(line.split() for line in table.group(1).strip().splitlines())
    return {rule: int(n) for rule, n in counts.items() if rule != "all"}


def _edit_params(repo: Path, change) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    change(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _compare_locks(a: Path, b: Path) -> tuple[list[str], list[str]]:
    """Outputs with equal / different content hashes in the two repositories' dvc.lock."""

    def outs(repo):
        lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
        return {o["path"]: o["md5"] for st in lock.values() for o in st.get("outs", [])}

    oa, ob = outs(a), outs(b)
    same = sorted(p for p in oa if oa[p] == ob.get(p))
    return same, sorted(set(oa) - set(same))
