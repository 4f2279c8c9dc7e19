"""Non-uniform superposition: labels, switch points and the push on the other features, on hand-built layouts."""
import math

import torch

import monosemantic.experiments.nonuniform as nu


def _plane(angles_deg, norms=None):
    a = torch.tensor(angles_deg) * math.pi / 180
    W = torch.stack([a.cos(), a.sin()])
    return W * (torch.tensor(norms) if norms else 1)


def test_switches_and_the_nearest_angle():
    pentagon = _plane([0, 72, 144, 216, 288])
    pushed = _plane([0, 80, 150, 210, 280])
    digons = _plane([0, 90, 180, 270, 0], [0.0, 1, 1, 1, 1])  # feature 0 dropped, the rest two antipodal pairs
    res = nu._describe([0.01, 0.05, 0.5], torch.stack([digons, pentagon, pushed]), [0.1, 0.1, 0.1])
    assert res["labels"][0] == "2 antipodal pairs (4 represented)" and res["labels"][1].startswith("pentagon")
    assert res["switches"][0]["between"] == [0.01, 0.05]
    assert res["nearest_angle_deg"][0] is None  # feature 0 not represented
    assert abs(res["nearest_angle_deg"][1] - 72) < 1e-3 and abs(res["nearest_angle_deg"][2] - 80) < 1e-3


def test_nonuniform_runs():
    res = nu.nonuniform([0.01, 0.5], [0.5, 2.0], steps=50, seeds=1)
    assert len(res["density"]["labels"]) == 2 and len(res["importance"]["W"]) == 2
