"""Correlated features: principal-component alignment and set interference on hand-built layouts."""
import math

import torch

import monosemantic.experiments.correlated as cor


def test_pc_alignment_side_by_side_and_collapsed():
    side = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]])
    collapsed = torch.tensor([[[0.7, 0.7, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    assert abs(cor.pc_alignment(side, (0, 1)).item() - 0.5) < 1e-6
    assert abs(cor.pc_alignment(collapsed, (0, 1)).item() - 1.0) < 1e-6


def test_set_interference():
    # two sets of two in m=2: each set orthogonal within, the sets at 45 degrees to each other
    c = 1 / math.sqrt(2)
    W = torch.tensor([[1.0, 0.0, c, -c], [0.0, 1.0, c, c]])
    out = cor.set_interference(W, [[0, 1], [2, 3]])
    assert out["within"] < 1e-6 and abs(out["between"] - c) < 1e-6 and out["represented"] == 4


def test_collapse_and_local_bases_run():
    r = cor.collapse([0.1, 0.9], steps=30, seeds=1)
    assert len(r["alignment"]) == 2 and all(0 <= a <= 1 + 1e-6 for a in r["alignment"])
    lb = cor.local_bases(n_sets=2, set_size=2, m=2, densities=[0.2], steps=30, seeds=1)
    assert lb["n"] == 4 and len(lb["within"]) == 1
