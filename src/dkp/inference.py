"""The inference API the features, sweep and evaluate stages call: trained modules behind one
object.

Three steps, each a function of the one before:
  embed          pixels -> pooled feature, per frame;
  terms          feature, position -> the method's per-frame terms (classifier probabilities,
                 or DKP.student_terms / teacher_terms), still per frame;
  predict_terms  the terms of the sampled frames -> frame and video scores (DKP.combine).
`predict` = predict_terms(terms(...)), so predict() on cached embed() outputs equals running
the full networks on the same frames, and the sweep may compute `terms` once per cached
frame and `predict_terms` once per sampling configuration.

Methods (dkp.configs.METHODS) and the backbones whose features they read:
  teacher     t: teacher         mean over teacher frames of softmax(C_t(g_j))
  student     s: student_plain   the Student baseline (CE only, never saw the teacher)
  student-kd  s: student_kd      the Student+KD baseline (CE + KD, its own training), no teacher
  dkp         s: student, t: teacher   DKP without the ensemble: mean of softmax(s_i), s_i =
                                       C_s'(f_i, z_i)
  dste        s: student, t: teacher   the full method: p_i with the teacher's own frames (method.md
                                       4)
"""

from __future__ import annotations

import numpy as np
import torch

from . import checkpoints, layout, runtime
from .errors import DkpError
from .flops import CostModel
from .models import FORWARD_BATCH, embed_frames
from .models.dkp import masked_mean

ROLES = {
    "dste": {"s": "student", "t": "teacher"},
    "dkp": {"s": "student", "t": "teacher"},
    "teacher": {"t": "teacher"},
    "student": {"s": "student_plain"},
    "student-kd": {"s": "student_kd"},
}
# the kind of per-frame terms each method reads from its roles: dste and dkp share theirs
TERMS = {
    "dste": {"s": "dkp-student", "t": "dkp-teacher"},
    "dkp": {"s": "dkp-student", "t": "dkp-teacher"},
    "teacher": {"t": "probs"},
    "student": {"s": "probs"},
    "student-kd": {"s": "probs"},
}


class Predictor:
    def __init__(self, backbones: dict, entries: dict, dkp, classes: list[str], device):
        self.backbones = backbones  # name -> module (eval, on device)
        self.entries = entries  # name -> arch, width, input_size, normalize
        self.dkp = dkp
        self.classes = list(classes)
        self.num_classes = len(classes)
        self.device = torch.device(device)
        self.backbone_names = sorted(backbones)
        self.input_size = {n: e["input_size"] for n, e in entries.items()}
        self._cost = None

    @classmethod
    def load(cls, p: dict, device, seed: int) -> Predictor:
        """From `seed`'s teacher and student checkpoints (dkp.layout, relative to the project
        root)."""
        # as runtime.setup does, for callers that build a Predictor outside a stage
        runtime.warm_up_vector_math()
        t_path, s_path = layout.teacher_checkpoint(seed), layout.student_checkpoint(seed)
        t = checkpoints.read(t_path, "teacher")
        s = checkpoints.read(s_path, "student")
        if s.get("teacher_sha256") != checkpoints.file_digest(t_path):
            raise DkpError(
                f"{s_path} was trained with another {t_path}: rerun `dkp train-student --seed "
                f"{seed}`"
            )
        if list(s["classes"]) != list(t["classes"]):
            raise DkpError(f"{s_path} and {t_path} disagree on the classes")
        classes = list(t["classes"])
        entries = {"teacher": t["backbones"]["teacher"], **s["backbones"]}
        device = torch.device(device)
        backbones = {
            n: checkpoints.load_backbone(e, len(classes)).to(device) for n, e in entries.items()
        }
        dkp = checkpoints.build_dkp(s["dkp"], len(classes)).to(device)
        return cls(
            backbones,
            {n: {k: e[k] for k in checkpoints.BACKBONE_KEYS} for n, e in entries.items()},
            dkp,
            classes,
            device,
        )

    def roles(self, method: str) -> dict[str, str]:
        if method not in ROLES:
            raise DkpError(f"unknown method {method!r}; expected one of {sorted(ROLES)}")
        return dict(ROLES[method])

    def embed(
        self, name: str, frames_uint8: np.ndarray, batch: int = FORWARD_BATCH
    ) -> torch.Tensor:
        """(N, H, W, 3) uint8 frames -> (N, D) float32 CPU features of backbone `name`."""
        if name not in self.backbones:
            raise DkpError(f"unknown backbone {name!r}; expected one of {self.backbone_names}")
        e = self.entries[name]
        return embed_frames(
            self.backbones[name], frames_uint8, e["input_size"], e["normalize"], self.device, batch
        )

    def terms_key(self, method: str, role: str) -> tuple[str, str]:
        """(kind, backbone) of the per-frame terms `method` reads from `role`: methods whose
        keys are equal read the same terms, so a caller computes them once."""
        roles = self.roles(method)
        if role not in roles:
            raise DkpError(f"method {method} reads no {role}= frames; it reads {sorted(roles)}")
        return TERMS[method][role], roles[role]

    @torch.no_grad()
    def terms(self, method: str, role: str, feats: torch.Tensor, pos: torch.Tensor) -> dict:
        """Per-frame terms of `role`'s frames: feats (..., D) of backbone roles(method)[role],
        pos (...) in [0, 1]; every output keeps the leading shape, so rows may be gathered."""
        kind, name = self.terms_key(method, role)
        feats, pos = feats.to(self.device, torch.float32), pos.to(self.device, torch.float32)
        if kind == "dkp-student":
            return self.dkp.student_terms(feats, pos)
        if kind == "dkp-teacher":
            return self.dkp.teacher_terms(feats, pos)
        return {"probs": self.backbones[name].classify(feats).float().softmax(-1)}

    @torch.no_grad()
    def predict_terms(self, method: str, s=None, t=None) -> dict:
        """s, t: (terms (B, n, .) of the sampled frames, mask (B, n) bool or None) or None.

        Returns {"video": (B, C) probabilities, "frames": per-frame probabilities of the
        method: (B, ns, C) on the student frames, (B, nt, C) for the teacher alone}.
        """
        roles = self._check(method, s, t)
        if method in ("dste", "dkp"):
            (st, f_mask), (tt, g_mask) = s, t
            out = self.dkp.combine(
                st,
                tt,
                self._mask(f_mask),
                self._mask(g_mask),
                ensemble=method == "dste",
                fold_wo=True,
            )
            return {"video": out["video"], "frames": out["p"]}
        terms, mask = s if "s" in roles else t
        probs = terms["probs"]
        return {"video": masked_mean(probs, self._mask(mask)), "frames": probs}

    @torch.no_grad()
    def predict(self, method: str, s=None, t=None) -> dict:
        """s, t: (feats (B, n, D), pos (B, n) in [0, 1], mask (B, n) bool) or None; as
        predict_terms."""
        self._check(method, s, t)
        given = {
            role: (self.terms(method, role, x[0], x[1]), x[2])
            for role, x in (("s", s), ("t", t))
            if x is not None and role in self.roles(method)
        }
        return self.predict_terms(method, **given)

    def _check(self, method: str, s, t) -> dict[str, str]:
        roles = self.roles(method)
        for role, given in (("s", s), ("t", t)):
            if role in roles and given is None:
                raise DkpError(
                    f"method {method} needs {role}= (features of backbone {roles[role]})"
                )
        return roles

    def _mask(self, mask):
        return None if mask is None else mask.to(self.device, torch.bool)

    def cost(self):
        """dkp.flops.CostModel measured on these modules at their input sizes."""
        if self._cost is None:
            self._cost = CostModel.from_modules(
                {n: (m, self.input_size[n]) for n, m in self.backbones.items()}, ROLES, self.dkp
            )
        return self._cost
