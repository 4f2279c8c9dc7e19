import json
import math

import pytest
import torch

import monosemantic.measures as measures
from monosemantic.errors import InputError


def _polygon(k, m=2):
    a = torch.arange(k) * 2 * math.pi / k
    return torch.stack([a.cos(), a.sin()])[None]  # [1, 2, k]


def test_pentagon():
    W = _polygon(5)
    D = measures.feature_dimensionality(W)
    # unit vectors of a regular pentagon are a tight frame: each feature has 2/5 of a dimension
    torch.testing.assert_close(D, torch.full((1, 5), 0.4), rtol=1e-5, atol=1e-6)
    assert abs(D.sum().item() - 2) < 1e-5  # and the D_i sum to m
    torch.testing.assert_close(measures.dims_per_feature(W), torch.tensor([0.4]))
    g = measures.geometry(W[0])
    assert g["polygon"] == 5 and g["label"] == "pentagon" and g["antipodal_pairs"] == []


def test_two_antipodal_pairs():
    W = torch.tensor([[[1.0, 0, -1, 0, 0.1], [0, 1, 0, -1, 0.0]]])  # feature 4 is not represented
    D = measures.feature_dimensionality(W)
    # an antipodal pair shares one dimension: D = 1/2, less the small feature's 0.1^2 on axis 0
    torch.testing.assert_close(D[0, :4], torch.tensor([1 / 2.01, 0.5, 1 / 2.01, 0.5]), rtol=1e-5, atol=1e-6)
    g = measures.geometry(W[0])
    assert g["represented"] == [0, 1, 2, 3]
    assert g["antipodal_pairs"] == [[0, 2], [1, 3]] and g["label"] == "2 antipodal pairs"
    sup = measures.superposition(W)
    assert abs(sup[0, 0].item() - 1.01) < 1e-6  # its antipode, cos^2 = 1, and 0.1^2 from feature 4


def test_orthogonal_and_dropped():
    W = torch.tensor([[[1.0, 0, 0], [0, 1, 0]]])
    assert measures.represented(W).tolist() == [[True, True, False]]
    D = measures.feature_dimensionality(W)
    assert D.tolist() == [[1.0, 1.0, 0.0]]
    assert measures.geometry(W[0])["label"] == "orthogonal"
    assert measures.superposition(W)[0, :2].abs().max() < 1e-7


def test_neuron_polysemanticity():
    W = torch.tensor([[[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]]])
    share = measures.neuron_top_share(W)
    torch.testing.assert_close(share, torch.tensor([[1.0, 0.64]]))
    assert measures.monosemantic_neurons(W).tolist() == [[True, False]]


def test_summarize_is_json_ready():
    rows = measures.summarize(_polygon(5), privileged=True)
    assert rows[0]["represented_features"] == 5 and len(rows[0]["neuron_top_share"]) == 2
    assert json.loads(json.dumps(rows)) == rows


def test_superposition_counts_represented_features_only():
    # n=5, m=2 at S=0: two features on their own axes, three dropped near zero. No superposition at all, but
    # a near-zero column's unit direction is noise: over all five features the mean was 0.6.
    W = torch.tensor([[[1.0, 0, 0.01, 0.02, 0.0], [0, 1.0, 0.01, 0.0, 0.03]]])
    assert measures.superposition(W)[0].mean() > 0.55  # what the old mean counted
    assert measures.mean_superposition(W)[0] < 1e-3
    row = measures.summarize(W, privileged=False)[0]
    assert row["superposition"][2:] == [None, None, None] and row["superposition"][0] < 1e-3
    assert row["mean_superposition"] < 1e-3 and row["represented_features"] == 2
    none = measures.summarize(torch.zeros(1, 2, 3), privileged=False)[0]
    assert none["mean_superposition"] is None and none["superposition"] == [None] * 3


def test_dims_per_feature_counts_live_neurons_only():
    # three neurons, one dead (its row zeroed, as used_weights does): two features on two live neurons
    W = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
    assert measures.live_neurons(W).tolist() == [[True, True, False]]
    assert measures.dims_per_feature(W).tolist() == [1.0]  # 2 live / 2, not 3 / 2
    assert measures.summarize(W, privileged=True)[0]["live_neurons"] == 2


def _tegum(*blocks):
    """A tegum product: each block [m_b, n_b] in its own orthogonal subspace. Returns W: [sum m_b, sum n_b]."""
    return torch.block_diag(*blocks)


def _antiprism():
    h = 1 / math.sqrt(3)  # a tight frame: x^2 + y^2 and z^2 carry equal weight over the 8 vertices
    a = torch.arange(8) * math.pi / 4  # alternate vertices up and down, a quarter turn apart on each ring
    r = math.sqrt(1 - h * h)
    z = torch.tensor([h, -h] * 4)
    return torch.stack([r * a.cos(), r * a.sin(), z])


def test_tegum_factors_polytopes_and_energy_levels():
    tetra = torch.tensor([[1.0, 1, -1, -1], [1, -1, 1, -1], [1, -1, -1, 1]]) / math.sqrt(3)
    digon = torch.tensor([[1.0, -1.0]])
    W = _tegum(_polygon(3)[0], digon, torch.ones(1, 1), _polygon(5)[0], tetra, _antiprism())  # m = 12, n = 23
    W = torch.cat([W, torch.zeros(12, 1)], dim=1)  # and one feature that is not represented
    g = measures.geometry_levels(W)
    names = [f["polytope"] for f in g["factors"]]
    assert sorted(names) == sorted(["triangle", "digon", "dedicated (1)", "pentagon", "tetrahedron",
                                    "square antiprism"])
    assert [f["features"] for f in g["factors"]][:3] == [[0, 1, 2], [3, 4], [5]]
    levels = g["levels"]
    assert "23" not in levels  # only represented features get a level
    assert [levels[str(i)] for i in (0, 3, 5, 6, 11, 15)] == ["2/3", "1/2", "1", "2/5", "3/4", "3/8"]
    assert g["on_named_level"] == 1.0 and g["polytopes"]["digon"] == 1


def test_irregular_factors_are_off_the_levels():
    # three features in a plane at 0, 100 and 220 degrees: one factor of rank 2, not a regular triangle
    a = torch.tensor([0.0, 100.0, 220.0]) * math.pi / 180
    W = torch.stack([a.cos(), a.sin()])
    g = measures.geometry_levels(W)
    assert g["factors"] == [{"features": [0, 1, 2], "rank": 2, "polytope": "triangle"}]
    assert g["on_named_level"] < 1
    assert measures.energy_level(0.385) is None and measures.energy_level(0.395) == 0.4  # 2/5 vs 3/8 apart
    for eps in (0.0, 1.0, -0.1, 2.0):
        with pytest.raises(InputError, match="epsilon"):
            measures.tegum_factors(W, eps)
