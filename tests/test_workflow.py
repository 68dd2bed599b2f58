"""dvc.yaml and the Snakefile are one graph, and each stage declares exactly what it reads.

Fast tests read the two graphs (dvc.yaml, `dvc dag`, `snakemake --rulegraph` and a forced
dry run) and audit the source. The slow test runs the tiny pipeline with `dvc repro` in one
scratch repository and `snakemake --cores 2` in another and compares them.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

import workflow_audit as audit
from workflow_repos import REPO, TINY, dvc_reproduced, dvc_status, make_repo, sh, stages_run

FANOUT = {"frames": ("--shard", "data/frames"), "sweep": ("--group", "results/predictions")}
REDIRECT = re.compile(r" > (logs/\S+\.log) 2>&1$")


def rule_name(stage: str) -> str:
    return stage.replace("-", "_")


def dvc_stages(repo: Path) -> dict:
    """dvc.yaml stages with ${...} resolved from params.yaml."""
    params = yaml.safe_load((repo / "params.yaml").read_text())

    def resolve(text: str) -> str:
        def value(m):
            node = params
            for part in m.group(1).split("."):
                node = node[part]
            return str(node)
        return re.sub(r"\$\{([\w.]+)\}", value, text)

    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, st in stages.items():
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in st.get("outs", [])]
        out[name] = {"cmd": st["cmd"], "deps": [resolve(d) for d in st["deps"]],
                     "params": st.get("params", []), "outs": outs}
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
            job["shell"] = line[len("Shell command: "):]
    return jobs


def dot_edges(dot: str, names: dict[str, str] | None = None) -> set[tuple[str, str]]:
    """Edges of a DOT graph; `names` maps node ids to labels (Snakemake's rulegraph)."""
    edges = set()
    for a, b in re.findall(r'^\s*"?([\w-]+)"?\s*->\s*"?([\w-]+)"?', dot, re.M):
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
    dvc_edges = {(rule_name(a), rule_name(b)) for a, b in dot_edges(sh(["dvc", "dag", "--dot"], scratch).stdout)}
    dot = sh(["snakemake", "--rulegraph"], scratch).stdout
    labels = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, re.M))
    smk_edges = {(a, b) for a, b in dot_edges(dot, labels) if "all" not in (a, b)}
    assert set(labels.values()) - {"all"} == {rule_name(s) for s in stages}
    assert smk_edges == dvc_edges


def test_same_command_outputs_and_logs_per_stage(scratch):
    stages = dvc_stages(scratch)
    params = yaml.safe_load((scratch / "params.yaml").read_text())
    sys.path.insert(0, str(REPO / "src"))
    from dkp.configs import groups

    jobs = [j for j in dry_run_jobs(scratch) if j["rule"] != "all"]
    fanned = {"frames": [f"{i}/{params['frames']['shards']}" for i in range(params["frames"]["shards"])],
              "sweep": groups(params)}
    for name, st in stages.items():
        mine = [j for j in jobs if j["rule"] == rule_name(name)]
        commands, outs = [], set()
        for j in mine:
            m = REDIRECT.search(j["shell"] or "")
            assert m, f"{name}: shell must end with '> logs/<rule>.log 2>&1', found {j['shell']!r}"
            assert j["log"] == [m.group(1)], f"{name}: the command must write its rule's log"
            commands.append(j["shell"][: m.start()])
            for o in j["output"]:
                base = FANOUT.get(name, (None, None))[1]
                outs.add(base if base and o.startswith(base + "/") else o)
        if name in FANOUT:
            flag = FANOUT[name][0]
            assert sorted(commands) == sorted(f"{st['cmd']} {flag} {v}" for v in fanned[name])
        else:
            assert commands == [st["cmd"]]
        assert outs == set(st["outs"]), name
        data_in = {i for j in mine for i in j["input"] if not i.startswith("src/")}
        produced = {o for s in stages.values() for o in s["outs"]}
        # every data input of the Snakemake job is a DVC dep of the stage (fan-out folders
        # count as their parent; the synthetic folder stands for data.annotations/videos)
        deps = set(st["deps"])
        for i in data_in:
            parent = next((b for _, b in FANOUT.values() if i.startswith(b + "/")), i)
            assert parent in deps or any(d.startswith(parent + "/") for d in deps), (name, i)
        for d in deps - {d for d in deps if d.startswith("src/")}:
            if any(d == o or d.startswith(o + "/") for o in produced) or Path(scratch, d).exists():
                assert any(d == i or d.startswith(i + "/") or i.startswith(d + "/") for i in data_in), (name, d)


def test_rule_all_asks_for_every_final_output(scratch):
    stages = dvc_stages(scratch)
    outs = {o for s in stages.values() for o in s["outs"]}
    consumed = {o for o in outs for s in stages.values() for d in s["deps"] if d == o or d.startswith(o + "/")}
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
    helper.go(p["figures"], s["s1"]["ratios"], p["dkp"].get("heads"))
    return X, p[args.key]
def unused(p):
    return p["train"]
"""
    scan = audit._ModuleScan("dkp.fake", False)
    scan.visit(ast.parse(code))
    info = scan.info
    assert info.reads["run"] == {"teacher.arch", "student.arch", "figures", "sweep.s1.ratios", "dkp.heads"}
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
    st = dvc_stages(REPO)[stage]
    declared = {leaf for k in st["params"] for leaf in _leaves(params, k)}
    read = {leaf for k in found.keys for leaf in _leaves(params, k)}
    missing, extra = sorted(read - declared), sorted(declared - read)
    assert missing == [], f"{stage} reads params not listed in dvc.yaml: {missing}"
    assert extra == [], f"{stage}: dvc.yaml lists params the stage never reads: {extra}"
    code = [d for d in st["deps"] if d.startswith("src/")]
    covered = {f for f in found.files if any(f == d or f.startswith(d + "/") for d in code)}
    assert sorted(found.files - covered) == [], f"{stage} runs code not listed in its dvc.yaml deps"
    for d in code:
        assert any(f == d or f.startswith(d + "/") for f in found.files), f"{stage}: dep {d} is code it never imports"
    io = st["deps"] + st["outs"]
    unlisted = [p for p in found.paths
                if not any(p == d or p.startswith(d + "/") or d.startswith(p + "/") for d in io)]
    assert unlisted == [], f"{stage}'s code names files that are neither its deps nor its outs: {unlisted}"


MUTATIONS = [
    ("unknown key", lambda p: p["run"].update(seedd=1)),
    ("missing key", lambda p: p["frames"].pop("fps")),
    ("wrong type", lambda p: p["sweep"]["s1"].update(ratios="4")),
    ("out of range", lambda p: p["dkp"].update(dropout=1.0)),
    ("not in enum", lambda p: p["run"].update(device="tpu")),
    ("bad list item", lambda p: p["sweep"]["s2"]["nt5_ns"].append(0)),
    ("null where required", lambda p: p["figures"].update(dpi=None)),
]


@pytest.mark.parametrize("what,change", [("valid", lambda p: None)] + MUTATIONS)
def test_snakemake_and_dkp_validate_params_alike(what, change):
    """The Snakefile validates with Snakemake's validator (JSON Schema 2020-12), dkp with
    Draft 7: the same schema must accept and reject the same files."""
    import copy

    import jsonschema
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema_path = REPO / "workflow" / "schemas" / "params.schema.yaml"
    params = yaml.safe_load(TINY.read_text())
    change(params)
    dkp_ok = not list(jsonschema.Draft7Validator(yaml.safe_load(schema_path.read_text())).iter_errors(params))
    try:
        validate(copy.deepcopy(params), str(schema_path))
        smk_ok = True
    except WorkflowError:
        smk_ok = False
    assert dkp_ok == smk_ok == (what == "valid")


def test_snakemake_refuses_a_config_that_is_not_params_yaml(scratch, tmp_path):
    other = yaml.safe_load(TINY.read_text())
    other["run"]["seed"] = 1
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    proc = sh(["snakemake", "-n", "--cores", "1", "--configfile", str(tmp_path / "other.yaml")], scratch,
              check=False)
    assert proc.returncode != 0
    assert "edit params.yaml" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_dvc_repro_and_snakemake_give_the_same_results(tmp_path_factory):
    dvc_repo, dvc_s = dvc_reproduced(tmp_path_factory)
    smk = make_repo(tmp_path_factory.mktemp("snakemake-run"))
    start = time.monotonic()
    sh(["snakemake", "--profile", "workflow/profiles/default", "--cores", "2"], smk, timeout=900)
    smk_s = time.monotonic() - start
    print(f"\n[timing] dvc repro {dvc_s:.1f} s, snakemake --cores 2 {smk_s:.1f} s (tiny params)")
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
    same, differ = _compare_locks(dvc_repo, smk)
    print(f"[outs] identical in both runs: {same}; different: {differ}")

    # the same parameter edit invalidates the same stages in both runners
    for repo in (dvc_repo, smk):
        _edit_params(repo, lambda p: p["sweep"]["s1"]["adaptive_nt"].append(7))
    try:
        assert set(dvc_status(dvc_repo)) == {"sweep", "evaluate", "figures"}
        text = sh(["snakemake", "-n", "--profile", "workflow/profiles/default"], smk).stdout
        rules = set(re.findall(r"^(?:local)?rule (\w+):$", text, re.M)) - {"all"}
        assert rules == {"sweep", "evaluate", "figures"}
    finally:
        shutil.copy(TINY, dvc_repo / "params.yaml")
    assert dvc_status(dvc_repo) == {}


@pytest.mark.slow
def test_second_dvc_repro_does_nothing_and_declares_every_output(tmp_path_factory):
    repo, _ = dvc_reproduced(tmp_path_factory)
    proc = sh(["dvc", "repro"], repo)
    assert stages_run(proc.stdout) == [], proc.stdout
    outs = {o for s in dvc_stages(repo).values() for o in s["outs"]}
    for top in ("data", "models", "results"):
        for f in (repo / top).rglob("*"):
            rel = str(f.relative_to(repo))
            if f.is_file() and f.name != ".gitignore":
                assert any(rel == o or rel.startswith(o + "/") for o in outs), f"{rel} is no stage's output"


@pytest.mark.slow
def test_dvc_metrics_and_plots_render(tmp_path_factory):
    repo, _ = dvc_reproduced(tmp_path_factory)
    metrics = json.loads(sh(["dvc", "metrics", "show", "--json"], repo).stdout)
    assert metrics, "dvc metrics show found no metrics"
    plots = json.loads(sh(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    for title, figure in [("S-1 (DSTE sampling strategies)", "s1"), ("S-2 (number of sampled frames)", "s2")]:
        (plot,) = plots[title]
        rows = plot["content"]["data"]["values"]
        assert any(r.get("figure") == figure for r in rows), title
        assert plot["content"]["transform"][0]["filter"].startswith(f"datum.figure == '{figure}'")
    for title in ("Training loss", "Training accuracy"):
        rows = plots[title][0]["content"]["data"]["values"]
        files = {r.get("filename", r.get("filename::field", "")).split("::")[0] for r in rows}
        assert files == {"teacher.csv", "student.csv"}, title


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
