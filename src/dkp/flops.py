"""Computational cost, measured on the actual modules, never a constant.

"FLOPs" here follows the field's convention: multiply-accumulates (MACs), i.e.
torch.utils.flop_counter.FlopCounterMode's total (which counts a multiply-add as
2 FLOPs) divided by 2. ResNet-50 at 224x224 = 4.1 G, MobileNetV2 = 0.30 G.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_macs(fn, *args, **kwargs) -> int:
    """Multiply-accumulates of one call of fn(*args, **kwargs), no gradients."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops() // 2


def backbone_macs(model: nn.Module, size: int) -> int:
    """MACs for one size x size frame through the backbone up to its pooled feature, counted on
    a copy on the meta device: the same modules and shapes, no arithmetic (the counts depend on
    shapes alone, and the real convolutions under the counter cost seconds a sweep job)."""
    meta = copy.deepcopy(model).to("meta").eval()
    return count_macs(meta.embed, torch.zeros(1, 3, size, size, device="meta"))


def classifier_macs(model: nn.Module) -> int:
    """MACs of the backbone's linear classifier on one frame's feature."""
    device = next(model.parameters()).device
    return count_macs(model.head, torch.zeros(1, model.feature_dim, device=device))


class CostModel:
    """Per-video cost of a method: ns student frames, nt teacher frames, DKP, heads.

    per_frame: backbone name -> MACs per frame (pooled feature); classifier: backbone
    name -> MACs of its classifier per frame; roles: method -> {"s"/"t": backbone name}
    (dkp.inference.ROLES); dkp: the DKP module, measured at four (ns, nt) per variant and
    extended by its exact bilinear form (dkp_macs).
    """

    def __init__(
        self,
        per_frame: dict[str, int],
        classifier: dict[str, int],
        roles: dict,
        dkp: nn.Module | None,
        forms: dict | None = None,
    ):
        self.per_frame = dict(per_frame)
        self.classifier = dict(classifier)
        self.roles = roles
        self._dkp = None if dkp is None else copy.deepcopy(dkp).cpu().float().eval()
        # ensemble -> (attention, heads) bilinear coefficients, fitted on first use
        self._forms = dict(forms or {})

    @classmethod
    def from_modules(
        cls, backbones: dict[str, tuple[nn.Module, int]], roles: dict, dkp: nn.Module
    ) -> CostModel:
        """backbones: name -> (module, input size)."""
        return cls(
            {n: backbone_macs(m, s) for n, (m, s) in backbones.items()},
            {n: classifier_macs(m) for n, (m, _) in backbones.items()},
            roles,
            dkp,
        )

    def counts(self) -> dict:
        """Every count the model holds, the DKP forms of both variants fitted: JSON-ready, and
        from_counts rebuilds the same model from it without counting again."""
        for ensemble in (False, True):
            self.dkp_macs(ensemble, 1, 1)
        return {
            "per_frame": self.per_frame,
            "classifier": self.classifier,
            "dkp_forms": {_FORM_KEYS[e]: [list(f) for f in self._forms[e]] for e in (False, True)},
        }

    @classmethod
    def from_counts(cls, counts: dict, roles: dict) -> CostModel:
        """The model `counts()` described (no module, no counting: a process that only reads the
        counts never starts the counter)."""
        forms = {e: [tuple(f) for f in counts["dkp_forms"][k]] for e, k in _FORM_KEYS.items()}
        return cls(counts["per_frame"], counts["classifier"], roles, None, forms)

    def measure_dkp(self, ensemble: bool, ns: int, nt: int) -> tuple[int, int]:
        """(attention MACs, head MACs) of the DKP module on one video of ns x nt frames, counted."""
        d = self._dkp
        if d is None:
            raise ValueError("a CostModel read from counts has no DKP module to count")
        f, u = torch.zeros(1, ns, d.wq.in_features), torch.linspace(0, 1, ns)[None]
        g, v = torch.zeros(1, nt, d.wk.in_features), torch.linspace(0, 1, nt)[None]
        attention = count_macs(d.propagate, f, u, g, v)
        total = count_macs(d, f, u, g, v, ensemble=ensemble)
        return attention, total - attention

    def dkp_macs(self, ensemble: bool, ns: int, nt: int) -> tuple[int, int]:
        """measure_dkp from its bilinear form: every DKP product is per student frame, per
        teacher frame or per pair (A = q k^T, A val), so MACs = a ns nt + b ns + c nt + d
        exactly; the coefficients come from counts at (1, 1), (2, 1), (1, 2), (2, 2)."""
        if ensemble not in self._forms:
            m = {(i, j): self.measure_dkp(ensemble, i, j) for i in (1, 2) for j in (1, 2)}
            self._forms[ensemble] = [
                _bilinear(*(m[ij][part] for ij in ((1, 1), (2, 1), (1, 2), (2, 2))))
                for part in (0, 1)
            ]
        return tuple(a * ns * nt + b * ns + c * nt + d for a, b, c, d in self._forms[ensemble])

    def parts(self, method: str, ns: int | None, nt: int | None) -> dict[str, float]:
        """GMACs per video by component: student, teacher, dkp (attention), heads."""
        roles = self.roles[method]
        ns = int(ns or 0) if "s" in roles else 0
        nt = int(nt or 0) if "t" in roles else 0
        out = {"student": 0.0, "teacher": 0.0, "dkp": 0.0, "heads": 0.0}
        if "s" in roles:
            out["student"] = ns * self.per_frame[roles["s"]] / 1e9
        if "t" in roles:
            out["teacher"] = nt * self.per_frame[roles["t"]] / 1e9
        if method in ("dkp", "dste"):
            if ns and nt:
                attention, heads = self.dkp_macs(method == "dste", ns, nt)
                out["dkp"], out["heads"] = attention / 1e9, heads / 1e9
        elif "s" in roles:
            out["heads"] = ns * self.classifier[roles["s"]] / 1e9
        else:
            out["heads"] = nt * self.classifier[roles["t"]] / 1e9
        return out

    def gflops(self, method: str, ns: int | None, nt: int | None) -> float:
        """GMACs per video (the field's 'GFLOPs'): the sum of parts()."""
        return sum(self.parts(method, ns, nt).values())


_FORM_KEYS = {False: "dkp", True: "dste"}  # DKP without and with the ensemble


def _bilinear(m11: int, m21: int, m12: int, m22: int) -> tuple[int, int, int, int]:
    """(a, b, c, d) of M(ns, nt) = a ns nt + b ns + c nt + d through the four counts."""
    a = m22 - m21 - m12 + m11
    b, c = m21 - m11 - a, m12 - m11 - a
    return a, b, c, m11 - a - b - c


def run(params, args) -> None:
    """`dkp flops --backbone NAME --size S --width W`: per-frame cost of a fresh backbone."""
    from .errors import DkpError
    from .models import build_backbone

    if args.size < 16:
        raise DkpError(f"--size: expected at least 16 px, found {args.size}")
    if args.width <= 0:
        raise DkpError(f"--width: expected a positive multiplier, found {args.width}")
    model = build_backbone({"arch": args.backbone, "width": args.width}, num_classes=1000)
    macs = backbone_macs(model, args.size)
    head = classifier_macs(model)
    print(
        f"{args.backbone} {args.size}x{args.size} width {args.width:g}: {macs / 1e9:.4f} GFLOPs "
        "per frame (multiply-accumulates to the pooled feature, measured with "
        f"torch.utils.flop_counter; a 1000-class classifier adds {head / 1e9:.4f})"
    )
