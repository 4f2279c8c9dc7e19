"""Closed-form results for toy models: the n=2, m=1 phase diagram (Elhage et al. 2022).

Feature 1 has importance 1, feature 2 importance r, both density s. Three ideal layouts compete: keep feature 1
(W = [1, 0]), keep feature 2 (W = [0, 1]), or both as an antipodal pair (W = [1, -1]); the one of least loss wins.
"""
from __future__ import annotations

import numpy as np
import torch

import monosemantic.measures as measures

NEITHER, ONLY_1, ONLY_2, BOTH, SHARED = -1, 0, 1, 2, 3
LABELS = {NEITHER: "neither", ONLY_1: "feature 1 only", ONLY_2: "feature 2 only", BOTH: "both (superposition)",
          SHARED: "both, not antipodal"}


def ideal_losses(r, s) -> np.ndarray:
    """Losses of the three ideal layouts [feature 1 only, feature 2 only, antipodal pair]: [..., 3].

    Feature 1 has importance 1, feature 2 importance r, both density s: W = [1, 0] loses feature 2's
    variance r (s/3 - s^2/4); W = [0, 1] loses s/3 - s^2/4; W = [1, -1] interferes only when both are on,
    (1 + r) s^2 / 6.
    """
    r, s = np.broadcast_arrays(np.asarray(r, float), np.asarray(s, float))
    lone = s / 3 - s**2 / 4
    return np.stack([r * lone, lone, (1 + r) * s**2 / 6], axis=-1)


def analytic_labels(r, s) -> np.ndarray:
    """ONLY_1, ONLY_2 or BOTH: the ideal layout of least loss (superposition below s = 4r/(2+5r), r <= 1,
    and s = 4/(5+2r), r >= 1)."""
    return np.argmin(ideal_losses(r, s), axis=-1)


def boundary_curves(r_lo: float, r_hi: float, num: int = 200) -> list[tuple[np.ndarray, np.ndarray]]:
    """The analytic phase boundaries as (r, s) polylines: superposition's lower edge and the r = 1 line."""
    r1 = np.geomspace(min(r_lo, 1), 1, num)
    r2 = np.geomspace(1, max(r_hi, 1), num)
    return [(r1, 4 * r1 / (2 + 5 * r1)), (r2, 4 / (5 + 2 * r2)), (np.array([1.0, 1.0]), np.array([4 / 7, 1.0]))]


def n2m1_labels(W: torch.Tensor) -> np.ndarray:
    """Label each trained W: [points, 1, 2] by its represented features (norm > 0.5). Two represented features
    are superposition only as an antipodal pair (cos < -0.95); two on one shared direction are SHARED."""
    rep = measures.represented(W).numpy()
    antipodal = measures.cosines(W)[:, 0, 1].numpy() < measures.ANTIPODAL_COS
    both = np.where(antipodal, BOTH, SHARED)
    return np.where(rep[:, 0] & rep[:, 1], both, np.where(rep[:, 0], ONLY_1, np.where(rep[:, 1], ONLY_2, NEITHER)))
