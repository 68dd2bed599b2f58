"""Feature cache, sweep and evaluate: cached scores equal the direct path.

The fast tests use a small stand-in Predictor defined here (a test double of our
own dkp.inference API, per-frame so its cache is exact) over real frame files in
the data/frames layout; the slow test runs the real stages on the tiny params.
"""
from __future__ import annotations

import json
import subprocess
import zlib

import numpy as np
import pandas as pd
import pytest
import torch

from dkp import configs as configs_mod
from dkp import sampling
from dkp.cli import main as dkp_main
from dkp.evaluate import curves_table, metrics_summary
from dkp.features import FeatureCache, build_cache
from dkp.predictions import read as read_predictions, write as write_predictions
from dkp.sweep import select, sweep

ROLES = {"dste": ("s", "t"), "dkp": ("s", "t"), "teacher": ("t",), "student": ("s",), "student-kd": ("s",)}
N_CLASSES = 5


class StandInPredictor:
    """Same calls as dkp.inference.Predictor; tiny linear maps instead of networks."""

    backbone_names = ["student", "teacher"]
    num_classes = N_CLASSES

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.proj = {"student": torch.randn(3, 6, generator=g), "teacher": torch.randn(3, 4, generator=g)}
        self.head = {"student": torch.randn(6, N_CLASSES, generator=g),
                     "teacher": torch.randn(4, N_CLASSES, generator=g)}

    def roles(self, method):
        return {r: {"s": "student", "t": "teacher"}[r] for r in ROLES[method]}

    def embed(self, name, frames):
        x = torch.from_numpy(np.array(frames)).float().mean(dim=(1, 2)) / 255.0
        return x @ self.proj[name]

    def predict(self, method, s=None, t=None):
        def frame_logits(name, x):
            feats, pos, mask = x
            return feats @ self.head[name] + 2.0 * pos.unsqueeze(-1), mask.unsqueeze(-1).float()

        parts, frames = [], None
        if t is not None:
            lt, mt = frame_logits("teacher", t)
            parts.append((lt.softmax(-1), mt))
        if s is not None:
            ls, ms = frame_logits("student", s)
            if t is not None:  # "propagation": the teacher's masked mean logit reaches every student frame
                ls = ls + ((lt * mt).sum(1, keepdim=True) / mt.sum(1, keepdim=True))
            frames = ls.softmax(-1)
            parts.append((frames, ms))
        num = sum((p * m).sum(1) for p, m in parts)
        den = sum(m.sum(1) for _, m in parts)
        return {"video": num / den, "frames": frames}

    def cost(self):
        return _Cost()


class _Cost:
    def gflops(self, method, ns, nt):
        return 0.3 * ns + 4.1 * nt + (0.01 * ns * nt if method in ("dste", "dkp") else 0.0)


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
        shard = root / "data" / "frames" / f"shard-{zlib.crc32(vid.encode()) % p['frames']['shards']}"
        shard.mkdir(parents=True, exist_ok=True)
        np.save(shard / f"{vid}.npy", frames)
        np.save(shard / f"{vid}.t.npy", times)
        rows.append({"id": vid, "n_frames": n, "duration": duration, "label_index": int(rng.integers(0, N_CLASSES))})
    return pd.DataFrame(rows)


def direct_scores(predictor, p, video, config) -> np.ndarray:
    """The reference path: sample this video's frames, run the backbones on them, predict alone."""
    from dkp import framestore

    frames, times = framestore.load(p, video["id"])
    ns, nt = sampling.role_counts(config, float(video["duration"]))
    inputs = {}
    for role, name in predictor.roles(config.method).items():
        n = ns if role == "s" else nt
        idx = sampling.sample(times, float(video["duration"]), "adaptive", n=n)
        feats = predictor.embed(name, np.asarray(frames[idx]))
        pos = torch.from_numpy(sampling.positions(times[idx], float(video["duration"])))
        dev = feats.device
        inputs[role] = (feats[None], pos[None].to(dev), torch.ones(1, len(idx), dtype=torch.bool, device=dev))
    with torch.inference_mode():
        return predictor.predict(config.method, **inputs)["video"][0].float().cpu().numpy()


@pytest.fixture
def cached(tmp_path, monkeypatch, tiny_params):
    monkeypatch.chdir(tmp_path)
    tiny_params["features"]["batch_frames"] = 7  # batches that straddle videos
    videos = _write_frames(tmp_path, tiny_params, 9)
    predictor = StandInPredictor()
    build_cache(tiny_params, videos, predictor, tmp_path / "data" / "features")
    return tiny_params, videos, predictor, FeatureCache(tmp_path / "data" / "features")


def test_cache_layout_and_rows(cached):
    from dkp import framestore

    p, videos, predictor, cache = cached
    idx = cache.index
    assert idx["id"].tolist() == videos["id"].tolist()
    assert idx["offset"].tolist() == np.concatenate([[0], np.cumsum(videos["n_frames"])[:-1]]).tolist()
    assert idx["duration"].tolist() == videos["duration"].tolist()  # exact round trip through the csv
    for name, dim in (("student", 6), ("teacher", 4)):
        arr = cache.arrays[name]
        assert arr.dtype == np.float32 and arr.shape == (videos["n_frames"].sum(), dim)
    for _, v in idx.iterrows():
        frames, times = framestore.load(p, v["id"])
        rows = slice(v["offset"], v["offset"] + v["n_frames"])
        np.testing.assert_array_equal(cache.times[rows], times)
        np.testing.assert_allclose(cache.arrays["teacher"][rows], predictor.embed("teacher", frames).numpy(),
                                   atol=1e-6)


@pytest.mark.parametrize("batch_videos", [1, 4, 64])
def test_sweep_equals_direct_path(cached, batch_videos):
    p, videos, predictor, cache = cached
    configs = configs_mod.build(p)
    out = sweep(predictor, cache, configs, batch_videos, torch.device("cpu"), progress=False)
    for c in configs:
        pred = out[c.name]
        assert pred.scores.shape == (len(videos), N_CLASSES) and pred.scores.dtype == np.float32
        counts = np.array([sampling.role_counts(c, d) for d in videos["duration"]])
        used = ROLES[c.method]
        np.testing.assert_array_equal(pred.ns, counts[:, 0] if "s" in used else 0)
        np.testing.assert_array_equal(pred.nt, counts[:, 1] if "t" in used else 0)
        for v, (_, video) in enumerate(videos.iterrows()):
            np.testing.assert_allclose(pred.scores[v], direct_scores(predictor, p, video, c), atol=1e-5)


def _direct_fixed(predictor, p, video, config):
    """Fixed-interval configs: direct_scores samples adaptively with the fixed count, which is the
    same frames (both strategies are n segment centres); checked here explicitly."""
    ns, nt = sampling.role_counts(config, float(video["duration"]))
    assert ns == sampling.fixed_count(float(video["duration"]), config.rs)
    return direct_scores(predictor, p, video, config)


def test_fixed_sampling_counts_vary_per_video(cached):
    p, videos, predictor, cache = cached
    fixed = [c for c in configs_mod.build(p) if c.strategy == "fixed"]
    out = sweep(predictor, cache, fixed, 3, torch.device("cpu"), progress=False)
    for c in fixed:
        assert len(set(out[c.name].ns.tolist())) > 1  # durations 2-60 s: counts differ per video
        assert np.allclose(out[c.name].scores[0], _direct_fixed(predictor, p, videos.iloc[0], c), atol=1e-5)


def test_s3_frames_and_prediction_files_are_deterministic(cached, tmp_path):
    p, videos, predictor, cache = cached
    s3 = configs_mod.by_name(p)[p["sweep"]["s3_config"]]
    out = sweep(predictor, cache, [s3], 4, torch.device("cpu"), s3_config=s3.name, progress=False)
    rows = out[s3.name + ".frames"]
    assert len(rows) == len(videos)
    for (t, stu, dste), (_, v) in zip(rows, videos.iterrows()):
        assert len(t) == len(stu) == len(dste) == s3.ns
        assert np.all(np.diff(t) >= 0) and np.all((stu >= 0) & (stu <= 1)) and np.all((dste >= 0) & (dste <= 1))
    write_predictions(tmp_path / "a.npz", out[s3.name])
    again = sweep(predictor, cache, [s3], 2, torch.device("cpu"), progress=False)
    write_predictions(tmp_path / "b.npz", again[s3.name])
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    back = read_predictions(tmp_path / "a.npz")
    assert back.video_ids.tolist() == videos["id"].tolist()


def test_curves_table_gflops_and_order(cached):
    p, videos, predictor, cache = cached
    configs = configs_mod.build(p)
    preds = sweep(predictor, cache, configs, 64, torch.device("cpu"), progress=False)
    table, scores = curves_table(p, {c.name: preds[c.name] for c in configs}, predictor.cost(), skipped=2)
    assert table["name"].tolist() == [c.name for c in configs]
    for c, (_, row) in zip(configs, table.iterrows()):
        pr = preds[c.name]
        want = np.mean([_Cost().gflops(c.method, a, b) for a, b in zip(pr.ns, pr.nt)])
        assert row["gflops"] == pytest.approx(want)
        assert row["n_s"] == pytest.approx(pr.ns.mean()) and row["videos_skipped"] == 2
        assert 0 <= row["mAP"] <= row["mAP_official"] + 1e-9 <= 100 + 1e-9
    summary = metrics_summary(p, scores, len(videos), {"missing": 1, "unreadable": 1},
                              [f"c{i}" for i in range(N_CLASSES)])
    assert list(summary["operating_points"]) == p["evaluate"]["operating_points"]
    assert summary["videos"] == {"evaluated": len(videos), "skipped": 2, "skipped_missing": 1,
                                 "skipped_unreadable": 1}


def test_unknown_group_is_one_line(tiny_workdir, monkeypatch, capsys, tiny_params):
    monkeypatch.chdir(tiny_workdir)
    assert dkp_main(["sweep", "--group", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown group 'nope'" in err and "dste_adaptive-4" in err
    assert [c.group for c in select(tiny_params, "teacher")] == ["teacher"] * len(tiny_params["sweep"]["baselines"]["teacher_nt"])
