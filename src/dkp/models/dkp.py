"""Dynamic knowledge propagation (DKP), the student-teacher ensemble (DSTE) and their losses.

Read top to bottom; notation of docs/method.md ("Ours" 1-5):
  student frames x_i with features f_i = S(x_i) (B, ns, ds) at times u_i,
  teacher frames y_j with features g_j = T(y_j) (B, nt, dt) at times v_j,
  times are fractions of the video length in [0, 1].

  q_i = Wq f_i + P(u_i),  k_j = Wk g_j + P(v_j),  val_j = Wv g_j
  A   = softmax(q k^T / sqrt(d_head)) over the (valid) teacher frames, per head
  z_i = Wo sum_j A_ij val_j                         propagated feature, teacher space
  s_i = C_s'(concat(f_i, z_i))                      enriched student logits
  t_i = C_t(z_i)                                    propagated teacher logits
  w_i = sigmoid(h(concat(f_i, z_i)))                gate
  p_i = w_i softmax(s_i) + (1 - w_i) softmax(t_i)   DSTE frame probabilities
  video = (sum_i p_i + lambda_T sum_j softmax(C_t(g_j))) / (ns + lambda_T nt)

Masks (B, n) bool, True = a real frame, let videos with different ns, nt share a batch.

Everything but A and what follows it is per frame: q_i, k_j, val_j, C_t(g_j) and, since
C_s' and h are linear in concat(f_i, z_i), their f-halves. `student_terms` and
`teacher_terms` compute those; `combine` does the rest on the terms of the sampled frames,
and `forward` (training) is the two composed. The sweep computes the terms once per
cached frame and calls `combine` per sampling configuration (dkp.inference.Predictor).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEARNED_BINS = 64  # positions of the learned encoding table, linearly interpolated
MAX_FREQ_CYCLES = 64  # highest sinusoid frequency: 64 half-turns per video length


# ---------------------------------------------------------------- position encoding P(u)


def sinusoid(u: torch.Tensor, dim: int) -> torch.Tensor:
    """(..., ) fractions -> (..., dim) sin/cos features, frequencies geometric in pi..64 pi."""
    half = dim // 2
    steps = torch.arange(half, device=u.device, dtype=torch.float32) / max(half - 1, 1)
    freqs = math.pi * MAX_FREQ_CYCLES**steps
    angles = u.float().unsqueeze(-1) * freqs
    out = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return F.pad(out, (0, dim - 2 * half))


class PositionEncoding(nn.Module):
    """P(u) for u in [0, 1]: `sinusoidal` (fixed basis, learned per-channel gain), `learned`
    (a table over LEARNED_BINS positions, initialised to the sinusoid) or `none`."""

    def __init__(self, kind: str, dim: int, scale: float):
        super().__init__()
        self.kind, self.dim, self.scale = kind, dim, scale
        if kind == "sinusoidal":
            self.gain = nn.Parameter(torch.ones(dim))
        elif kind == "learned":
            grid = torch.linspace(0, 1, LEARNED_BINS)
            self.table = nn.Parameter(sinusoid(grid * scale, dim))
        elif kind != "none":
            raise ValueError(f"unknown position encoding {kind!r}")

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if self.kind == "sinusoidal":
            return self.gain * sinusoid(u * self.scale, self.dim)
        if self.kind == "learned":
            x = u.float().clamp(0, 1) * (LEARNED_BINS - 1)
            lo = x.floor().long().clamp(max=LEARNED_BINS - 2)
            frac = (x - lo).unsqueeze(-1)
            return self.table[lo] * (1 - frac) + self.table[lo + 1] * frac
        return torch.zeros(*u.shape, self.dim, device=u.device)


# ---------------------------------------------------------------- video score


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over dim 1 of (B, n, C) counting only mask-True frames."""
    if mask is None:
        return x.mean(dim=1)
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp(min=1)


def video_score(
    probs: torch.Tensor, probs_mask, q: torch.Tensor | None, q_mask, teacher_weight: float
) -> torch.Tensor:
    """Mean of the student-frame probabilities with the teacher-frame probabilities q,
    each teacher frame weighted teacher_weight relative to one student frame."""

    def total(x, mask):
        if mask is None:
            return x.sum(1), torch.full(x.shape[:1], x.shape[1], dtype=x.dtype, device=x.device)
        m = mask.to(x.dtype)
        return (x * m.unsqueeze(-1)).sum(1), m.sum(1)

    num, den = total(probs, probs_mask)
    if q is not None and teacher_weight > 0:
        qn, qd = total(q, q_mask)
        num, den = num + teacher_weight * qn, den + teacher_weight * qd
    return num / den.clamp(min=1e-12).unsqueeze(-1)


# ---------------------------------------------------------------- DKP + DSTE


class DKP(nn.Module):
    """Built from per-frame terms (student_terms, teacher_terms: one frame at a time, so a
    caller may compute them once per frame and reuse them for any set of sampled frames)
    and `combine`, which couples the frames. forward = combine(student_terms, teacher_terms)."""

    def __init__(
        self,
        ds: int,
        dt: int,
        num_classes: int,
        heads: int,
        dim: int,
        pos_encoding: str = "sinusoidal",
        pos_scale: float = 1.0,
        dropout: float = 0.0,
        teacher_frame_weight: float = 1.0,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dkp.dim ({dim}) must be a multiple of dkp.heads ({heads})")
        self.heads, self.dim, self.teacher_frame_weight = heads, dim, teacher_frame_weight
        # cross-attention: student queries, teacher keys/values
        self.wq = nn.Linear(ds, dim)
        self.wk = nn.Linear(dt, dim)
        self.wv = nn.Linear(dt, dim)
        self.wo = nn.Linear(dim, dt)
        self.pos = PositionEncoding(pos_encoding, dim, pos_scale)
        self.attn_drop = nn.Dropout(dropout)
        # heads: C_s' on concat(f, z), gate h, and C_t = the teacher's own classifier, frozen
        self.student_head = nn.Linear(ds + dt, num_classes)
        self.gate = nn.Linear(ds + dt, 1)
        self.teacher_head = nn.Linear(dt, num_classes)
        self.teacher_head.requires_grad_(False)
        nn.init.zeros_(self.gate.weight)  # start as an even mix, w = 0.5
        nn.init.zeros_(self.gate.bias)

    def init_heads(self, teacher_fc: nn.Linear, student_fc: nn.Linear | None = None) -> None:
        """C_t := the teacher's classifier; C_s' starts as C_s(f) + C_t(z) (a product of
        experts)."""
        ds = self.student_head.in_features - self.teacher_head.in_features
        with torch.no_grad():
            self.teacher_head.weight.copy_(teacher_fc.weight)
            self.teacher_head.bias.copy_(teacher_fc.bias)
            if student_fc is not None:
                self.student_head.weight[:, :ds].copy_(student_fc.weight)
                self.student_head.weight[:, ds:].copy_(teacher_fc.weight)
                # the heads may sit on another device than the backbones
                dev = self.student_head.bias.device
                self.student_head.bias.copy_(student_fc.bias.to(dev) + teacher_fc.bias.to(dev))

    # ------------------------------------------------ per-frame terms
    # concat(f, z) enters C_s' and h linearly, so each splits into an f-half (per student
    # frame, biases included) and a z-half (applied after the attention).

    def queries(self, f, u):
        """q_i = Wq f_i + P(u_i)."""
        return self.wq(f) + self.pos(u).to(f.dtype)

    def keys_values(self, g, v):
        """k_j = Wk g_j + P(v_j) and val_j = Wv g_j."""
        return self.wk(g) + self.pos(v).to(g.dtype), self.wv(g)

    def student_terms(self, f, u, ensemble: bool = True) -> dict:
        """Per student frame (any leading shape): q_i and the f-halves of C_s' (and of h)."""
        ds = f.shape[-1]
        out = {
            "q": self.queries(f, u),
            "s": F.linear(f, self.student_head.weight[:, :ds], self.student_head.bias),
        }
        if ensemble:
            out["w"] = F.linear(f, self.gate.weight[:, :ds], self.gate.bias)
        return out

    def teacher_terms(self, g, v, ensemble: bool = True) -> dict:
        """Per teacher frame (any leading shape): k_j, val_j (and C_t(g_j) with its softmax)."""
        k, val = self.keys_values(g, v)
        out = {"k": k, "val": val}
        if ensemble:
            out["logits"] = self.teacher_head(g)
            out["probs"] = out["logits"].float().softmax(-1)
        return out

    # ------------------------------------------------ what couples the frames

    def attend(self, q, k, val, g_mask=None):
        """sum_j A_ij val_j (B, ns, dim), i.e. z_i before Wo, and A (B, heads, ns, nt)."""
        B, ns, _ = q.shape
        h = self.heads
        q, k, val = (
            x.reshape(B, x.shape[1], h, self.dim // h).transpose(1, 2) for x in (q, k, val)
        )  # (B, h, n, d)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.dim // h)  # (B, h, ns, nt)
        if g_mask is not None:
            scores = scores.masked_fill(~g_mask[:, None, None, :], torch.finfo(scores.dtype).min)
        attn = scores.softmax(dim=-1)
        mixed = (self.attn_drop(attn) @ val).transpose(1, 2).reshape(B, ns, self.dim)
        return mixed, attn

    def z_heads(self, ensemble: bool = True, fold_wo: bool = False):
        """(weight, bias) of the z-halves stacked, [s | w | t] = weight z + bias (C_s' alone
        without the ensemble). fold_wo composes them with Wo, so they take sum_j A_ij val_j
        directly: the same outputs for inference, where z itself is not needed."""
        ds = self.student_head.in_features - self.teacher_head.in_features
        weight, bias = self.student_head.weight[:, ds:], torch.zeros_like(self.student_head.bias)
        if ensemble:
            weight = torch.cat([weight, self.gate.weight[:, ds:], self.teacher_head.weight])
            bias = torch.cat([bias, torch.zeros_like(self.gate.bias), self.teacher_head.bias])
        if fold_wo:
            weight, bias = weight @ self.wo.weight, weight @ self.wo.bias + bias
        return weight, bias

    def combine(
        self,
        st: dict,
        tt: dict,
        f_mask=None,
        g_mask=None,
        ensemble: bool = True,
        fold_wo: bool = False,
    ) -> dict:
        """Per-frame outputs and the video score from the terms of the sampled frames
        ((B, ns, .) and (B, nt, .)); fold_wo: see z_heads (then no "z" in the output)."""
        mixed, attn = self.attend(st["q"], tt["k"], tt["val"], g_mask)
        out = {"attn": attn}
        if fold_wo:
            x = mixed  # Wo is inside the folded z-halves
        else:
            x = out["z"] = self.wo(mixed)
        by_z = F.linear(x, *self.z_heads(ensemble, fold_wo))  # [s | w | t] contributions of z
        C = self.teacher_head.out_features
        s = out["s"] = st["s"] + by_z[..., :C]
        if not ensemble:
            out["p"] = s.float().softmax(-1)
            out["video"] = masked_mean(out["p"], f_mask)
            return out
        t = by_z[..., C + 1 :]
        w = torch.sigmoid(st["w"] + by_z[..., C : C + 1]).squeeze(-1).float()
        p = w.unsqueeze(-1) * s.float().softmax(-1) + (1 - w).unsqueeze(-1) * t.float().softmax(-1)
        video = video_score(p, f_mask, tt["probs"], g_mask, self.teacher_frame_weight)
        out.update(t=t, w=w, p=p, teacher_logits=tt["logits"], video=video)
        return out

    def propagate(self, f, u, g, v, g_mask=None):
        """Cross-attention alone: z (B, ns, dt) and the attention A (B, heads, ns, nt)."""
        mixed, attn = self.attend(self.queries(f, u), *self.keys_values(g, v), g_mask)
        return self.wo(mixed), attn

    def forward(self, f, u, g, v, f_mask=None, g_mask=None, ensemble: bool = True) -> dict:
        """All per-frame outputs and the video score. ensemble=False is "DKP without the
        ensemble": the video score is the mean of softmax(s_i) over the student frames."""
        return self.combine(
            self.student_terms(f, u, ensemble),
            self.teacher_terms(g, v, ensemble),
            f_mask,
            g_mask,
            ensemble,
        )


# ---------------------------------------------------------------- training losses (method.md 5)


def kd_term(student_logits, teacher_logits, tau: float, mask=None) -> torch.Tensor:
    """tau^2 KL(softmax(teacher/tau) || softmax(student/tau)), mean over frames (_frame_mean)."""
    log_p_t = F.log_softmax(teacher_logits.float() / tau, dim=-1)
    log_p_s = F.log_softmax(student_logits.float() / tau, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    return tau * tau * _frame_mean(kl, mask)


def _frame_mean(x: torch.Tensor, mask) -> torch.Tensor:
    """Mean over each video's (valid) frames, then over the videos: every video counts once, as in
    the video-level terms, so a step split over ranks by videos sums to the whole step's."""
    if mask is None:
        return x.mean()
    m = mask.to(x.dtype)
    return ((x * m).sum(-1) / m.sum(-1).clamp(min=1)).mean()


def dkp_losses(
    out: dict,
    kd_logits,
    labels,
    target_feats,
    target_logits,
    f_mask,
    lambda_feat: float,
    lambda_kd: float,
    tau: float,
) -> dict:
    """Every loss term of the student stage; `total` is what is minimised.

    out: DKP.forward (ensemble=True); kd_logits: C_s(f_i), the student's own classifier,
    trained with CE + KD alone (never sees z; the Student+KD baseline is trained on its own,
    dkp.train.kd);
    target_feats: T(x_i), the teacher's features of the student frames;
    target_logits: C_t(T(x_i)). The feature term is the squared error averaged over
    frames and feature channels (||.||^2 / dt; lambda_feat absorbs the constant).
    """
    video_s = masked_mean(out["s"].float(), f_mask)
    video_kd = masked_mean(kd_logits.float(), f_mask)
    feat = ((out["z"].float() - target_feats.float()) ** 2).mean(-1)
    terms = {
        "ce_s": F.cross_entropy(video_s, labels),
        "ce_p": F.nll_loss(out["video"].clamp(min=1e-8).log(), labels),
        "feat": _frame_mean(feat, f_mask),
        "kd": kd_term(out["s"], target_logits, tau, f_mask),
        "ce_kd": F.cross_entropy(video_kd, labels),
        "kd_kd": kd_term(kd_logits, target_logits, tau, f_mask),
    }
    terms["total"] = (
        terms["ce_s"]
        + terms["ce_p"]
        + lambda_feat * terms["feat"]
        + lambda_kd * terms["kd"]
        + terms["ce_kd"]
        + lambda_kd * terms["kd_kd"]
    )
    return terms
