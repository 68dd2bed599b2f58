"""Feature cache, sweep and evaluate: cached scores equal the direct path.

The fast tests use a small stand-in Predictor defined here (a test double of our
own dkp.inference API, per frame, so its cache is the direct path up to the rounding of
its 3-term products) over real frame files in the data/frames layout; the slow tests read
the tiny pipeline as `dvc repro` ran it for the session (tests/workflow_repos.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures.rounding import gamma

from dkp import configs as configs_mod
from dkp import framestore, inference, layout, sampling
from dkp.cli import main as dkp_main
from dkp.evaluate import metrics_summary, score_all
from dkp.feature_cache import FeatureCache
from dkp.features import build_cache, build_shards
from dkp.flops import CostModel
from dkp.predictions import read as read_predictions
from dkp.predictions import write as write_predictions
from dkp.sweep import select, sweep
from dkp.tables import CURVE_COLUMNS

ROLES = {
    "dste": ("s", "t"),
    "dkp": ("s", "t"),
    "teacher": ("t",),
    "student": ("s",),
    "student-kd": ("s",),
}
N_CLASSES = 5


class StandInPredictor:
    """Same calls as dkp.inference.Predictor; tiny linear maps instead of networks."""

    backbone_names = ["student", "teacher"]
    num_classes = N_CLASSES

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.proj = {
            "student": torch.randn(3, 6, generator=g),
            "teacher": torch.randn(3, 4, generator=g),
        }
        self.head = {
            "student": torch.randn(6, N_CLASSES, generator=g),
            "teacher": torch.randn(4, N_CLASSES, generator=g),
        }

    def roles(self, method):
        return {r: {"s": "student", "t": "teacher"}[r] for r in ROLES[method]}

    def embed(self, name, frames):
        x = torch.from_numpy(np.array(frames)).float().mean(dim=(1, 2)) / 255.0
        return x @ self.proj[name]

    def terms_of(self, frames, name="teacher") -> np.ndarray:
        """sum|terms| of embed's 3-term products, in float64."""
        x = np.asarray(frames, dtype=np.float64).mean(axis=(1, 2)) / 255.0
        return x @ np.abs(self.proj[name].double().numpy())

    def terms_key(self, method, role):
        return "logits", self.roles(method)[role]

    def terms(self, method, role, feats, pos):  # per frame, like Predictor.terms
        name = self.roles(method)[role]
        return {"logits": feats @ self.head[name] + 2.0 * pos.unsqueeze(-1)}

    def predict_terms(self, method, s=None, t=None):
        parts, frames = [], None
        if t is not None:
            lt, mt = t[0]["logits"], t[1].unsqueeze(-1).float()
            parts.append((lt.softmax(-1), mt))
        if s is not None:
            ls, ms = s[0]["logits"], s[1].unsqueeze(-1).float()
            if (
                t is not None
            ):  # "propagation": the teacher's masked mean logit reaches every student frame
                ls = ls + ((lt * mt).sum(1, keepdim=True) / mt.sum(1, keepdim=True))
            frames = ls.softmax(-1)
            parts.append((frames, ms))
        num = sum((p * m).sum(1) for p, m in parts)
        den = sum(m.sum(1) for _, m in parts)
        return {"video": num / den, "frames": frames}

    def predict(self, method, s=None, t=None):
        given = {
            r: (self.terms(method, r, x[0], x[1]), x[2])
            for r, x in (("s", s), ("t", t))
            if x is not None
        }
        return self.predict_terms(method, **given)

    def cost(self):
        return _Cost()


class _Cost:
    """0.3 GMACs a student frame, 4.1 a teacher frame, 0.01 a (student, teacher) pair in DKP."""

    def gflops(self, method, ns, nt):
        return 0.3 * ns + 4.1 * nt + (0.01 * ns * nt if method in ("dste", "dkp") else 0.0)

    def counts(self):
        """The same model as dkp.flops.CostModel.counts writes it (what the sweep reads)."""
        per_frame = {n: 300_000_000 for n in ("student", "student_plain", "student_kd")}
        per_frame["teacher"] = 4_100_000_000
        pair = [[10_000_000, 0, 0, 0], [0, 0, 0, 0]]  # attention a ns nt + ..., heads none
        return {
            "per_frame": per_frame,
            "classifier": dict.fromkeys(per_frame, 0),
            "dkp_forms": {"dkp": pair, "dste": pair},
        }


def assert_within(a: np.ndarray, b: np.ndarray, terms: np.ndarray) -> None:
    """a and b: float32 results of the same 3-term sums grouped differently."""
    err = np.abs(a.astype(np.float64) - b)
    assert (err <= 2 * gamma(3) * terms).all(), float((err / (2 * gamma(3) * terms)).max())


def _write_frames(root, p, n_videos, seed=0):
    """Real frame files in the data/frames layout (shard by crc32), like `dkp frames` writes."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_videos):
        vid = f"vid{i:03d}"
        duration = float(rng.uniform(2.0, 60.0))
        n = max(1, int(duration))  # 1 fps
        times = np.arange(n) + 0.5
        frames = rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
        shard = (
            root / "data" / "frames" / f"shard-{zlib.crc32(vid.encode()) % p['frames']['shards']}"
        )
        shard.mkdir(parents=True, exist_ok=True)
        np.save(shard / f"{vid}.npy", frames)
        np.save(shard / f"{vid}.t.npy", times)
        rows.append(
            {
                "id": vid,
                "n_frames": n,
                "duration": duration,
                "label_index": int(rng.integers(0, N_CLASSES)),
            }
        )
    return pd.DataFrame(rows)


def direct_scores(predictor, p, video, config) -> np.ndarray:
    """The reference path: sample this video's frames, run the backbones on them, predict alone."""
    frames, times = framestore.load(p, video["id"])
    inputs = {}
    for role, name in predictor.roles(config.method).items():
        idx = sampling.config_indices(config, role, times, float(video["duration"]))
        feats = predictor.embed(name, np.asarray(frames[idx]))
        pos = torch.from_numpy(sampling.positions(times[idx], float(video["duration"])))
        dev = feats.device
        inputs[role] = (
            feats[None],
            pos[None].to(dev),
            torch.ones(1, len(idx), dtype=torch.bool, device=dev),
        )
    with torch.inference_mode():
        return predictor.predict(config.method, **inputs)["video"][0].float().cpu().numpy()


@pytest.fixture
def cached(tmp_path, monkeypatch, tiny_params):
    monkeypatch.chdir(tmp_path)
    tiny_params["features"]["batch_frames"] = 7  # batches that straddle videos
    videos = _write_frames(tmp_path, tiny_params, 9)
    predictor = StandInPredictor()
    shards = tiny_params["frames"]["shards"]
    build_shards(
        tiny_params, videos, predictor, tmp_path / "data" / "features", list(range(shards))
    )
    return tiny_params, videos, predictor, FeatureCache(tmp_path / "data" / "features", shards)


def test_cache_layout_and_rows(cached):
    """Shard folders read as one cache ordered by id: rows, times and features of every video, and
    the same index, times and rows as one unsharded cache of the same videos."""
    p, videos, predictor, cache = cached
    assert p["frames"]["shards"] == 2
    sizes = [len(s.index) for s in cache.shards]
    assert len(sizes) == 2 and min(sizes) > 0 and sum(sizes) == len(videos)
    idx = cache.index
    assert idx["id"].tolist() == videos["id"].tolist()
    assert (
        idx["offset"].tolist() == np.concatenate([[0], np.cumsum(videos["n_frames"])[:-1]]).tolist()
    )
    # exact round trip through the csv
    assert idx["duration"].tolist() == videos["duration"].tolist()
    assert cache.dims == {"student": 6, "teacher": 4}
    for _, v in idx.iterrows():
        frames, times = framestore.load(p, v["id"])
        rows = slice(v["offset"], v["offset"] + v["n_frames"])
        np.testing.assert_array_equal(cache.times[rows], times)
        got = cache.rows("teacher", [rows])
        assert got.dtype == np.float32 and got.shape == (v["n_frames"], 4)
        # the stand-in's pixel means are exact (sums of integers, / 16, / 255); its 3-term
        # products with proj are grouped by the batch's row count: 2 gamma(3) sum|terms|
        assert_within(got, predictor.embed("teacher", frames).numpy(), predictor.terms_of(frames))
    build_cache(p, videos, predictor, "data/whole/shard-0")
    whole = FeatureCache("data/whole", 1)
    pd.testing.assert_frame_equal(whole.index, cache.index)
    np.testing.assert_array_equal(whole.times, cache.times)
    spans = [slice(o, o + n) for o, n in zip(idx["offset"], idx["n_frames"])][::-1]
    for name in ("student", "teacher"):
        frames = np.concatenate([framestore.load(p, vid)[0] for vid in idx["id"][::-1]])
        terms = predictor.terms_of(frames, name)
        assert_within(whole.rows(name, spans), cache.rows(name, spans), terms)
    with pytest.raises(ValueError, match="not within one video"):
        cache.rows("teacher", [slice(0, int(idx["n_frames"][0]) + 1)])


def test_feature_shards_must_agree(cached):
    p, videos, predictor, cache = cached
    meta = json.loads((cache.shards[1].folder / "meta.json").read_text())
    meta["backbones"]["teacher"] = 5
    (cache.shards[1].folder / "meta.json").write_text(json.dumps(meta))
    from dkp.errors import DkpError

    with pytest.raises(DkpError, match="shards hold different backbones"):
        FeatureCache(cache.folder, 2)
    meta["backbones"]["teacher"] = 4
    (cache.shards[1].folder / "meta.json").write_text(json.dumps(meta))
    costs = json.loads((cache.shards[1].folder / "costs.json").read_text())
    costs["per_frame"]["teacher"] += 1
    (cache.shards[1].folder / "costs.json").write_text(json.dumps(costs))
    with pytest.raises(DkpError, match="embedded by different modules"):
        FeatureCache(cache.folder, 2)
    with pytest.raises(DkpError, match="not found or incomplete"):
        FeatureCache(cache.folder, 3)


@pytest.mark.parametrize("batch_videos", [1, 4, 64])
def test_sweep_equals_direct_path(cached, batch_videos):
    p, videos, predictor, cache = cached
    configs = configs_mod.build(p)
    out, _ = sweep(predictor, cache, configs, batch_videos, torch.device("cpu"), progress=False)
    for c in configs:
        pred = out[c.name]
        assert pred.scores.shape == (len(videos), N_CLASSES) and pred.scores.dtype == np.float32
        counts = np.array([sampling.role_counts(c, d) for d in videos["duration"]])
        used = ROLES[c.method]
        np.testing.assert_array_equal(pred.ns_nominal, counts[:, 0] if "s" in used else 0)
        np.testing.assert_array_equal(pred.nt_nominal, counts[:, 1] if "t" in used else 0)
        for role, fed in (("s", pred.ns), ("t", pred.nt)):
            want = [
                len(
                    sampling.config_indices(
                        c, role, framestore.load(p, v["id"])[1], float(v["duration"])
                    )
                )
                if role in used
                else 0
                for _, v in videos.iterrows()
            ]
            assert fed.tolist() == want
        assert (pred.ns <= pred.ns_nominal).all() and (pred.nt <= pred.nt_nominal).all()
        # charged what the features' counts give, exactly
        charged = CostModel.from_counts(_Cost().counts(), inference.ROLES)
        assert pred.gflops.tolist() == [
            charged.gflops(c.method, a, b) for a, b in zip(pred.ns, pred.nt)
        ]
        for v, (_, video) in enumerate(videos.iterrows()):
            # One float32 chain (embed, logits, teacher mean, softmax, frame mean), some sums
            # grouped differently (cached rows vs the sampled frames): 1e-5 on probabilities,
            # measured at most 6e-8 on the AVX2, AVX-512 and SSE4.1 kernels; a chain bound from
            # the logits' |terms| (up to ~16) is ~1e-4, too loose to see a wrong frame.
            np.testing.assert_allclose(
                pred.scores[v], direct_scores(predictor, p, video, c), atol=1e-5
            )


def test_fixed_sampling_counts_vary_per_video(cached):
    p, videos, predictor, cache = cached
    fixed = [c for c in configs_mod.build(p) if c.strategy == "fixed"]
    out, _ = sweep(predictor, cache, fixed, 3, torch.device("cpu"), progress=False)
    for c in fixed:
        pred = out[c.name]
        assert len(set(pred.nt_nominal.tolist())) > 1  # durations 2-60 s: counts differ per video
        assert pred.nt_nominal.tolist() == [
            sampling.fixed_count(d, c.rt) for d in videos["duration"]
        ]
        assert (
            pred.ns_nominal == c.ratio * pred.nt_nominal
        ).all()  # the ratio holds in every video


def test_s3_frames_and_prediction_files_are_deterministic(cached, tmp_path):
    p, videos, predictor, cache = cached
    s3 = configs_mod.by_name(p)[p["sweep"]["s3_config"]]
    out, rows = sweep(
        predictor, cache, [s3], 4, torch.device("cpu"), s3_config=s3.name, progress=False
    )
    assert len(rows) == len(videos)
    for (t, stu, dste), fed in zip(rows, out[s3.name].ns):
        assert len(t) == len(stu) == len(dste) == fed <= s3.ns
        assert len(np.unique(t)) == len(t)  # distinct frames only
        assert (
            np.all(np.diff(t) >= 0)
            and np.all((stu >= 0) & (stu <= 1))
            and np.all((dste >= 0) & (dste <= 1))
        )
    write_predictions(tmp_path / "a.npz", out[s3.name])
    again, no_rows = sweep(predictor, cache, [s3], 2, torch.device("cpu"), progress=False)
    assert no_rows == []
    write_predictions(tmp_path / "b.npz", again[s3.name])
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    back = read_predictions(tmp_path / "a.npz")
    assert back.video_ids.tolist() == videos["id"].tolist()


def test_curves_table_gflops_and_order(cached):
    p, videos, predictor, cache = cached
    configs = configs_mod.build(p)
    preds, _ = sweep(predictor, cache, configs, 64, torch.device("cpu"), progress=False)
    p["evaluate"]["bootstrap"]["resamples"] = 50
    table, _ = score_all(p, {0: preds, 1: preds}, skipped=2)
    assert (
        table["name"].tolist() == [c.name for c in configs] and list(table.columns) == CURVE_COLUMNS
    )
    for c, (_, row) in zip(configs, table.iterrows()):
        pr = preds[c.name]
        want = np.mean([_Cost().gflops(c.method, a, b) for a, b in zip(pr.ns, pr.nt)])
        # float64 means of a few dozen numbers in another order: within 1e-14, pytest.approx's
        # default relative 1e-6 far above
        assert row["gflops"] == pytest.approx(want)
        assert row["n_s"] == pytest.approx(pr.ns.mean()) and row["videos_skipped"] == 2
        if pr.ns_nominal.sum():
            assert row["distinct_s"] == pytest.approx(pr.ns.sum() / pr.ns_nominal.sum())
        # float64 sums over <= 100 videos: 1e-9 covers their rounding (< 1e-12)
        assert 0 <= row["mAP"] <= row["mAP_official"] + 1e-9 <= 100 + 1e-9
        assert row["mAP_lo"] <= row["mAP"] <= row["mAP_hi"]
    summary = metrics_summary(
        p,
        table,
        len(videos),
        {"missing": 1, "unreadable": 1},
        [f"c{i}" for i in range(N_CLASSES)],
        [],
    )
    assert list(summary["operating_points"]) == p["evaluate"]["operating_points"]
    assert summary["videos"] == {
        "evaluated": len(videos),
        "skipped": 2,
        "skipped_missing": 1,
        "skipped_unreadable": 1,
    }


def test_unknown_group_is_one_line(tiny_workdir, monkeypatch, capsys, tiny_params):
    monkeypatch.chdir(tiny_workdir)
    assert dkp_main(["sweep", "--seed", "0", "--group", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown group 'nope'" in err and "dste_adaptive-4" in err
    n_teacher = len(tiny_params["sweep"]["baselines"]["teacher_nt"])
    assert [c.group for c in select(tiny_params, "teacher")] == ["teacher"] * n_teacher


# ---------------------------------------------------------------- end to end, real stages (slow)

EXACT_CONFIGS = [
    "dste_adaptive-4_nt3",
    "dste_fixed-8_rt8",
    "dkp_adaptive-4_nt5",
    "teacher_nt5",
    "student_ns20",
    "student-kd_ns5",
]


@pytest.fixture(scope="module")
def pipeline(tiny_dvc_repro):
    """The tiny pipeline as `dvc repro` ran it for the session (conftest.tiny_dvc_repro, shared
    with the workflow and remote tests: read-only here, copied to be changed)."""
    import yaml

    root, _ = tiny_dvc_repro
    return root, yaml.safe_load((root / "params.yaml").read_text())


@pytest.mark.slow
def test_cached_scores_equal_networks_on_sampled_frames(pipeline, monkeypatch):
    from dkp import runtime
    from dkp.inference import Predictor

    root, p = pipeline
    monkeypatch.chdir(root)
    monkeypatch.setattr(runtime, "_precision", p["run"]["precision"])  # the pipeline's: fp32
    seed = p["run"]["seeds"][-1]
    predictor = Predictor.load(p, torch.device("cpu"), seed)
    videos = FeatureCache(root / layout.features_dir(seed), p["frames"]["shards"]).index
    by_name = configs_mod.by_name(p)
    worst = 0.0
    for name in EXACT_CONFIGS:
        c = by_name[name]
        pred = read_predictions(root / layout.predictions_file(seed, c.group, name))
        assert pred.video_ids.tolist() == videos["id"].tolist()
        for v, (_, video) in enumerate(videos.iterrows()):
            direct = direct_scores(predictor, p, video, c)
            worst = max(worst, float(np.abs(pred.scores[v] - direct).max()))
    # One float32 chain (backbones, DKP, heads), the cached path grouping some sums otherwise:
    # the backbones' features are the same bits in any batch (a frame's sums never span
    # frames), the heads' and DKP's gemms group by row count, Wo is folded. 1e-5 on
    # probabilities, measured at most 3e-8 on the AVX2, AVX-512 and SSE4.1 kernels.
    assert worst <= 1e-5


@pytest.mark.slow
def test_evaluate_outputs_and_official_rescoring(pipeline):
    root, p = pipeline
    configs = configs_mod.build(p)
    table = pd.read_csv(root / "results" / "curves.csv")
    assert table["name"].tolist() == [c.name for c in configs]
    assert list(table.columns) == CURVE_COLUMNS
    assert (table["gflops"] > 0).all() and (table["videos_evaluated"] == 4).all()
    assert (table["mAP_lo"] <= table["mAP"]).all() and (table["mAP"] <= table["mAP_hi"]).all()
    summary = json.loads((root / "results" / "metrics.json").read_text())
    assert sorted(summary["operating_points"]) == sorted(p["evaluate"]["operating_points"])
    annotations = json.loads((root / p["data"]["annotations"]).read_text())
    gt = {
        vid: sorted({a["label"] for a in v["annotations"]})
        for vid, v in annotations["database"].items()
        if v["subset"] == p["data"]["val_subset"]
    }
    seed = p["run"]["seeds"][0]
    exported = sorted((root / "results" / "anet" / layout.seed_dir(seed)).glob("*.json"))
    assert [f.stem for f in exported] == sorted(
        c.name for c in configs if c.method in ("dste", "teacher")
    )
    for f in exported:
        c = configs_mod.by_name(p)[f.stem]
        pred = read_predictions(root / layout.predictions_file(seed, c.group, c.name))
        from dkp.anet_format import score_results
        from dkp.metrics import mean_ap_official

        official = score_results(json.loads(f.read_text()), gt).value
        # the same float64 APs, averaged in another class order: within 1e-15
        assert official == pytest.approx(
            mean_ap_official(pred.scores, pred.labels).value, abs=1e-12
        )
    assert (root / "results" / "bootstrap.npz").exists()


@pytest.mark.slow
def test_rerun_is_byte_identical_and_group_runs_alone(pipeline, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(pipeline[0], root, symlinks=True)
    outputs = sorted((root / "results").glob("predictions/seed-*/*/*")) + [
        root / "results" / "curves.csv",
        root / "results" / "metrics.json",
    ]
    # every seed's
    assert len({f.parent.parent.name for f in outputs if "predictions" in f.parts}) >= 2
    before = {f: f.read_bytes() for f in outputs}
    for args in (
        ["sweep", "--seed", "1"],
        ["sweep", "--seed", "0", "--group", "teacher"],
        ["evaluate"],
    ):
        res = subprocess.run(
            ["dkp", *args, "--params", "params.yaml"], cwd=root, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr
    assert {f: f.read_bytes() for f in outputs} == before


def test_skipped_counts_from_data_report():
    from dkp.evaluate import _skipped_from_report

    report = {
        "subsets": {
            "validation": {
                "videos": 10,
                "ok": 5,
                "missing": 2,
                "not_extracted": 1,
                "unreadable_ingest": 1,
                "unreadable_extraction": 1,
            }
        }
    }
    assert _skipped_from_report(report, "validation") == {"missing": 3, "unreadable": 2}
    assert _skipped_from_report(report, "testing") is None


def test_non_finite_features_fail_with_one_line(cached):
    p, videos, predictor, cache = cached

    class Broken(StandInPredictor):
        def embed(self, name, frames):
            out = super().embed(name, frames)
            return out * float("nan") if name == "student" else out

    from dkp.errors import DkpError

    with pytest.raises(DkpError, match="backbone student gives non-finite features"):
        build_cache(p, videos, Broken(), "data/features2")
    assert not list(Path("data").glob(".features2*"))  # the temporary folder went with the failure
