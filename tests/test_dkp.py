"""DKP cross-attention, the DSTE gate, the video score, the losses and the inference API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures.rounding import gamma, softmax_sum_tol

from dkp.inference import ROLES, Predictor
from dkp.models import build_backbone, preprocess
from dkp.models.dkp import DKP, dkp_losses, sinusoid, video_score

C = 6


def make_dkp(ds=12, dt=10, heads=2, dim=8, pos="sinusoidal", weight=1.0, seed=0) -> DKP:
    torch.manual_seed(seed)
    m = DKP(ds, dt, C, heads, dim, pos, 1.0, 0.0, weight)
    m.init_heads(torch.nn.Linear(dt, C), torch.nn.Linear(ds, C))
    return m.eval()


def inputs(B=3, ns=7, nt=4, ds=12, dt=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    f, gt = torch.randn(B, ns, ds, generator=g), torch.randn(B, nt, dt, generator=g)
    u, v = torch.rand(B, ns, generator=g), torch.rand(B, nt, generator=g)
    return f, u, gt, v


@pytest.mark.parametrize("pos", ["sinusoidal", "learned", "none"])
def test_shapes_and_attention_rows_sum_to_one(pos):
    m = make_dkp(pos=pos)
    f, u, g, v = inputs()
    out = m(f, u, g, v)
    assert out["z"].shape == (3, 7, 10)
    assert out["attn"].shape == (3, 2, 7, 4)
    assert out["s"].shape == out["t"].shape == out["p"].shape == (3, 7, C)
    assert out["w"].shape == (3, 7)
    assert out["video"].shape == (3, C)
    # rows of 4 softmax weights
    torch.testing.assert_close(
        out["attn"].sum(-1), torch.ones(3, 2, 7), atol=softmax_sum_tol(4), rtol=0
    )
    assert (out["attn"] >= 0).all()


def test_key_mask_gives_padded_teacher_frames_no_weight():
    m = make_dkp()
    f, u, g, v = inputs(nt=5)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False], [True] * 3 + [False] * 2])
    attn = m(f, u, g, v, g_mask=mask)["attn"].detach()
    assert float(attn[1, :, :, 2:].abs().max()) == 0.0
    assert float(attn[2, :, :, 3:].abs().max()) == 0.0
    # rows of 5 softmax weights, the masked ones exactly 0
    torch.testing.assert_close(
        attn.sum(-1), torch.ones_like(attn.sum(-1)), atol=softmax_sum_tol(5), rtol=0
    )


def test_padding_does_not_change_scores():
    """A video alone equals the same video padded with masked frames beside a longer one."""
    m = make_dkp()
    f, u, g, v = inputs(B=1, ns=5, nt=3)
    alone = m(f, u, g, v)
    pad_f = torch.cat([f, torch.randn(1, 4, 12)], 1)
    pad_u = torch.cat([u, torch.rand(1, 4)], 1)
    pad_g = torch.cat([g, torch.randn(1, 2, 10)], 1)
    pad_v = torch.cat([v, torch.rand(1, 2)], 1)
    fm = torch.tensor([[True] * 5 + [False] * 4])
    gm = torch.tensor([[True] * 3 + [False] * 2])
    padded = m(pad_f, pad_u, pad_g, pad_v, fm, gm)
    # One float32 chain, some sums grouped differently by the padding (row counts, masked
    # terms): assert_close's default 1e-5 + 1.3e-6|x|; measured 0 on the AVX2, AVX-512 and
    # SSE4.1 kernels. (A worst-case or probabilistic bound of the whole chain, from its sums'
    # |terms|, is over 1e-4: too loose to see a masking error.)
    torch.testing.assert_close(padded["video"], alone["video"])
    torch.testing.assert_close(padded["p"][:, :5], alone["p"])
    noens = m(pad_f, pad_u, pad_g, pad_v, fm, gm, ensemble=False)["video"]
    torch.testing.assert_close(noens, m(f, u, g, v, ensemble=False)["video"])


def test_gate_keeps_probabilities_valid_even_with_extreme_gates():
    m = make_dkp()
    f, u, g, v = inputs()
    for bias in (-50.0, 0.0, 50.0):
        with torch.no_grad():
            m.gate.weight.normal_(0, 5.0)
            m.gate.bias.fill_(bias)
        out = m(f * 10, u, g, v)
        assert ((out["w"] >= 0) & (out["w"] <= 1)).all()
        assert ((out["p"] >= 0) & (out["p"] <= 1)).all()
        # p mixes two softmax rows of C (each within softmax_sum_tol(C)) with 4 roundings; the
        # video adds the 7 + 4 frames' rows and divides
        torch.testing.assert_close(
            out["p"].sum(-1), torch.ones(3, 7), atol=gamma(2 * C + 4), rtol=0
        )
        torch.testing.assert_close(
            out["video"].sum(-1), torch.ones(3), atol=gamma(2 * C + 4 + 7 + 4 + 1), rtol=0
        )
    with torch.no_grad():  # a saturated gate picks one side exactly
        m.gate.weight.zero_()
        m.gate.bias.fill_(100.0)
    out = m(f, u, g, v)
    # exact: sigmoid(100) is 1.0 in float32, so p = 1 * softmax(s) + 0 * softmax(t), the same
    # softmax of the same logits
    assert torch.equal(out["w"], torch.ones_like(out["w"]))
    assert torch.equal(out["p"], out["s"].softmax(-1))


def test_sharp_attention_on_a_coincident_frame_propagates_the_teacher_feature():
    """Hand-set weights: queries and keys are the position encoding alone, made sharp by its
    gain; values and output are identities. A student frame at a teacher frame's time then
    receives exactly that teacher frame's feature."""
    dt = 16
    m = DKP(ds=5, dt=dt, num_classes=C, heads=2, dim=dt, pos_encoding="sinusoidal")
    with torch.no_grad():
        for lin in (m.wq, m.wk, m.wv, m.wo):
            lin.weight.zero_()
            lin.bias.zero_()
        m.wv.weight.copy_(torch.eye(dt))
        m.wo.weight.copy_(torch.eye(dt))
        m.pos.gain.fill_(30.0)
    m.eval()
    g = torch.randn(1, 5, dt)
    v = torch.tensor([[0.1, 0.3, 0.5, 0.7, 0.9]])
    u = torch.tensor([[0.5, 0.1, 0.9]])
    with torch.no_grad():
        z, attn = m.propagate(torch.randn(1, 3, 5), u, g, v)
    assert float(attn[0, :, 0, 2].min()) > 0.999
    for i, j in ((0, 2), (1, 0), (2, 4)):
        # z_i - g_j = sum_k A_ik (g_k - g_j) (Wv, Wo identities): at most the weight A leaves
        # off frame j times the largest difference, plus the 5-term sum's rounding
        leak = float(1 - attn[0, :, i, j].min()) * float((g[0] - g[0, j]).abs().max())
        tol = leak + gamma(5) * float(g.abs().max())
        torch.testing.assert_close(z[0, i], g[0, j], atol=tol, rtol=0)


def test_position_encoding_separates_nearby_times():
    a, b = sinusoid(torch.tensor([0.50]), 64), sinusoid(torch.tensor([0.52]), 64)
    assert float((a * a).sum()) > float((a * b).sum()) + 1.0


def test_teacher_frame_weight():
    f, u, g, v = inputs()
    zero = make_dkp(weight=0.0)(f, u, g, v)
    # two orders of a 7-term sum of probabilities (>= 0), then the same division
    torch.testing.assert_close(zero["video"], zero["p"].mean(1), atol=0, rtol=2 * gamma(7))
    m = make_dkp(weight=2.0)
    out = m(f, u, g, v)
    q = out["teacher_logits"].softmax(-1)
    # exact: the formula's operations, in video_score's order, on the same tensors
    assert torch.equal(out["video"], (out["p"].sum(1) + 2.0 * q.sum(1)) / (7 + 2.0 * 4))
    assert torch.equal(video_score(out["p"], None, q, None, 2.0), out["video"])


def test_losses_train_everything_but_the_frozen_teacher_head():
    m = make_dkp().train()
    f, u, g, v = inputs()
    f.requires_grad_(True)
    out = m(f, u, g, v)
    kd_logits = torch.randn(3, 7, C, requires_grad=True)
    target = torch.randn(3, 7, 10)
    terms = dkp_losses(
        out, kd_logits, torch.tensor([0, 3, 5]), target, m.teacher_head(target), None, 0.5, 2.0, 4.0
    )
    assert set(terms) == {"ce_s", "ce_p", "feat", "kd", "ce_kd", "kd_kd", "total"}
    assert all(torch.isfinite(t) for t in terms.values())
    expect = (
        terms["ce_s"]
        + terms["ce_p"]
        + 0.5 * terms["feat"]
        + 2.0 * terms["kd"]
        + terms["ce_kd"]
        + 2.0 * terms["kd_kd"]
    )
    assert torch.equal(terms["total"], expect)  # exact: dkp_losses adds in this order
    terms["total"].backward()
    assert m.teacher_head.weight.grad is None
    for name in ("wq", "wk", "wv", "wo", "student_head", "gate"):
        assert getattr(m, name).weight.grad is not None, name
    assert f.grad is not None and kd_logits.grad is not None
    # the mean over 3 x 7 frames of means over 10 channels, against one 210-term mean (all >= 0)
    torch.testing.assert_close(
        terms["feat"], ((out["z"] - target) ** 2).mean(), atol=0, rtol=gamma(9 + 20 + 209 + 3)
    )


# ---------------------------------------------------------------- inference API


def tiny_predictor(seed=0) -> Predictor:
    torch.manual_seed(seed)
    entries = {
        "teacher": {"arch": "resnet18", "width": 0.125, "input_size": 32, "normalize": "per_image"},
        "student": {
            "arch": "mobilenet_v2",
            "width": 0.25,
            "input_size": 24,
            "normalize": "per_image",
        },
        "student_plain": {
            "arch": "mobilenet_v2",
            "width": 0.25,
            "input_size": 24,
            "normalize": "per_image",
        },
        "student_kd": {
            "arch": "mobilenet_v2",
            "width": 0.25,
            "input_size": 24,
            "normalize": "per_image",
        },
    }
    nets = {n: build_backbone(e, C).eval() for n, e in entries.items()}
    dkp = DKP(
        nets["student"].feature_dim,
        nets["teacher"].feature_dim,
        C,
        2,
        16,
        "sinusoidal",
        1.0,
        0.1,
        1.0,
    )
    dkp.init_heads(nets["teacher"].head, nets["student"].head)
    return Predictor(nets, entries, dkp.eval(), [f"c{i}" for i in range(C)], "cpu")


def test_predict_on_embedded_features_equals_the_full_networks():
    pred = tiny_predictor()
    rng = np.random.default_rng(0)
    fs = rng.integers(0, 256, (2, 6, 40, 48, 3), dtype=np.uint8)  # non-square: centre crop, resize
    ft = rng.integers(0, 256, (2, 3, 40, 48, 3), dtype=np.uint8)
    u, v = torch.rand(2, 6), torch.rand(2, 3)
    ones_s, ones_t = torch.ones(2, 6, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool)
    with torch.no_grad():

        def direct(name, frames):
            e = pred.entries[name]
            x = preprocess(
                torch.from_numpy(frames.reshape(-1, 40, 48, 3)), e["input_size"], e["normalize"]
            )
            return pred.backbones[name].embed(x).view(2, -1, pred.backbones[name].feature_dim)

        f, g = direct("student", fs), direct("teacher", ft)
        full = {
            "dste": pred.dkp(f, u, g, v)["video"],
            "dkp": pred.dkp(f, u, g, v, ensemble=False)["video"],
            "teacher": pred.backbones["teacher"].classify(g).softmax(-1).mean(1),
            "student": pred.backbones["student_plain"]
            .classify(direct("student_plain", fs))
            .softmax(-1)
            .mean(1),
            "student-kd": pred.backbones["student_kd"]
            .classify(direct("student_kd", fs))
            .softmax(-1)
            .mean(1),
        }
    for method, expected in full.items():
        roles = pred.roles(method)
        kw = {}
        if "s" in roles:
            emb = pred.embed(roles["s"], fs.reshape(-1, 40, 48, 3), batch=5).view(2, 6, -1)
            kw["s"] = (emb, u, ones_s)
        if "t" in roles:
            kw["t"] = (
                pred.embed("teacher", ft.reshape(-1, 40, 48, 3), batch=4).view(2, 3, -1),
                v,
                ones_t,
            )
        out = pred.predict(method, **kw)
        # The backbones' features are the same bits in any batch (checked on the AVX2,
        # AVX-512 and SSE4.1 kernels: a frame's sums never span frames); the heads and DKP
        # group their sums by row count (gemm blocking), the folded Wo (fold_wo) multiplies in
        # another order: 1e-5 + 1e-4|x|, measured at most 4.5e-8 on those kernels.
        torch.testing.assert_close(out["video"], expected, atol=1e-5, rtol=1e-4)
        # rows of C probabilities (softmax_sum_tol), mixed, over at most 6 + 3 frames
        torch.testing.assert_close(
            out["video"].sum(-1), torch.ones(2), atol=gamma(2 * C + 4 + 6 + 3 + 1), rtol=0
        )
        assert out["frames"].shape[:2] == ((2, 3) if method == "teacher" else (2, 6))


def literal_dkp(m: DKP, f, u, g, v, ensemble: bool) -> dict:
    """method.md 2-4 written out for one video (f (ns, ds), g (nt, dt)), head by head."""
    q, k, val = m.wq(f) + m.pos(u), m.wk(g) + m.pos(v), m.wv(g)
    d = m.dim // m.heads
    mixed = torch.cat(
        [
            (q[:, i : i + d] @ k[:, i : i + d].T / d**0.5).softmax(-1) @ val[:, i : i + d]
            for i in range(0, m.dim, d)
        ],
        -1,
    )
    z = m.wo(mixed)
    fz = torch.cat([f, z], -1)
    s = m.student_head(fz)
    if not ensemble:
        return {"p": s.softmax(-1), "video": s.softmax(-1).mean(0)}
    w = torch.sigmoid(m.gate(fz))
    p = w * s.softmax(-1) + (1 - w) * m.teacher_head(z).softmax(-1)
    lam = m.teacher_frame_weight
    video = (p.sum(0) + lam * m.teacher_head(g).softmax(-1).sum(0)) / (len(f) + lam * len(g))
    return {"p": p, "video": video}


@pytest.mark.parametrize("method", ["dste", "dkp"])
def test_terms_once_per_frame_then_per_config_equal_forward(method):
    """The sweep's path: Predictor.terms on a block of rows, gathered per video (different
    ns, nt in one batch, padded), then predict_terms; equals DKP.forward on the padded batch
    and the method's formulas on each video alone."""
    pred = tiny_predictor()
    m, ensemble = pred.dkp, method == "dste"
    with torch.no_grad():  # a gate off the even mix, so both of its halves matter
        m.gate.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(3)
    block_f = 3 * torch.randn(40, m.wq.in_features, generator=gen)  # cached rows of a few videos
    block_g = 3 * torch.randn(30, m.wk.in_features, generator=gen)
    pos_f, pos_g = torch.rand(40, generator=gen), torch.rand(30, generator=gen)
    s_rows = [[0, 3, 5, 9, 12], [20, 21], [30, 31, 35, 38, 39, 2, 1]]  # ns 5, 2, 7
    t_rows = [[1, 4], [10, 11, 12, 13], [29]]  # nt 2, 4, 1

    def padded(rows):
        mask = torch.tensor([[j < len(r) for j in range(max(map(len, rows)))] for r in rows])
        return torch.tensor([r + [0] * (mask.shape[1] - len(r)) for r in rows]), mask

    (si, fm), (ti, gm) = padded(s_rows), padded(t_rows)
    s_terms, t_terms = (
        pred.terms(method, "s", block_f, pos_f),
        pred.terms(method, "t", block_g, pos_g),
    )
    fast = pred.predict_terms(
        method,
        s=({k: x[si] for k, x in s_terms.items()}, fm),
        t=({k: x[ti] for k, x in t_terms.items()}, gm),
    )
    with torch.no_grad():
        full = m(block_f[si], pos_f[si], block_g[ti], pos_g[ti], fm, gm, ensemble=ensemble)
        alone = [
            literal_dkp(m, block_f[s], pos_f[s], block_g[t], pos_g[t], ensemble)
            for s, t in zip(s_rows, t_rows)
        ]
    # One chain, sums grouped differently (the block's row count, gathered rows, padding, Wo
    # folded into the heads, head by head in literal_dkp): 1e-5 on probabilities, measured at
    # most 4.8e-7 on the AVX2, AVX-512 and SSE4.1 kernels. A chain bound from these sums'
    # |terms| (features 3 x randn of 1280 channels: |q.k| terms up to 3e3) is over 1e-3.
    tol = {"atol": 1e-5, "rtol": 0}
    torch.testing.assert_close(fast["video"], full["video"], **tol)
    torch.testing.assert_close(fast["frames"][fm], full["p"][fm], **tol)
    for b, ref in enumerate(alone):
        torch.testing.assert_close(fast["video"][b], ref["video"], **tol)
        torch.testing.assert_close(fast["frames"][b, : len(s_rows[b])], ref["p"], **tol)
    # the videos' scores differ: the check has teeth
    assert float(fast["video"].std(0).max()) > 1e-3


def test_roles_cover_every_method_and_name_cached_backbones():
    from dkp.configs import METHODS

    pred = tiny_predictor()
    assert set(ROLES) == set(METHODS)
    for method in METHODS:
        assert set(pred.roles(method).values()) <= set(pred.backbone_names)
    assert pred.roles("student") == {"s": "student_plain"}
    assert pred.roles("student-kd") == {"s": "student_kd"}
    assert pred.roles("teacher") == {"t": "teacher"}


def test_predict_errors_are_one_line():
    from dkp.errors import DkpError

    pred = tiny_predictor()
    with pytest.raises(DkpError, match="needs t="):
        pred.predict("dste", s=(torch.zeros(1, 2, 8), torch.zeros(1, 2), None))
    with pytest.raises(DkpError, match="unknown method"):
        pred.roles("ensemble")
    with pytest.raises(DkpError, match="unknown backbone"):
        pred.embed("resnet", np.zeros((1, 8, 8, 3), dtype=np.uint8))
