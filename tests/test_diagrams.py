"""Both phase diagrams under the paper's protocol (ten random starts, drop the worst, majority of the rest)."""
import numpy as np
import pytest
import torch

import monosemantic.experiments.diagrams as diagrams


def test_paper_protocol_drops_the_worst_and_takes_the_majority():
    labels = np.array([[0, 0, 1, 1, 1], [2, 2, 1, 1, 0]])
    loss = np.array([[0.1, 0.2, 0.3, 0.4, 9.0],  # the worst start's vote is dropped: a 2-2 tie ...
                     [0.5, 0.6, 0.1, 0.7, 0.8]])
    out = diagrams.protocol_labels(labels, loss)
    assert out["paper"].tolist() == [0, 1]  # ... which goes to the label whose best start has the lower loss
    assert out["best"].tolist() == [0, 1]
    labels = np.array([[1, 1, 1, 0]])
    assert diagrams.protocol_labels(labels, np.array([[0.2, 0.3, 0.4, 0.1]]))["paper"].tolist() == [1]


def test_n3m2_layouts_and_labels():
    L = diagrams.n3m2_layouts()
    names = [diagrams.layout_label(w) for w in L]
    assert names == ["1+2", "1/2+3", "1/2+3", "1+2+3 antipodal 1&2", "1+2+3 antipodal 1/2&3",
                     "1+2+3 antipodal 1/2&3", "1+2+3 triangle"]
    a = torch.tensor([0.0, 100.0, 230.0]) * torch.pi / 180
    assert diagrams.layout_label(torch.stack([a.cos(), a.sin()])) == "1+2+3 superposed"
    assert diagrams.layout_label(torch.zeros(2, 3)) == "none"


def test_both_diagrams_run_and_report_agreement():
    a = diagrams.n2m1(grid=3, steps=100, starts=3)
    assert set(a["agreement_with_analytic_far"]) == {"paper", "best", "candidates"}
    assert np.asarray(a["labels"]["paper"]).shape == (3, 3)
    b = diagrams.n3m2(grid=3, steps=100, starts=3)
    assert sum(b["label_counts"]["paper"].values()) == 9
    assert b["protocol_agreement_far"] is None or 0 <= b["protocol_agreement_far"] <= 1


def test_cli_protocols(tmp_path, capsys):
    from monosemantic.cli import main
    from monosemantic.runs import read_json
    import pytest

    with pytest.raises(SystemExit) as e:
        main(["phase", "protocols", "--out", str(tmp_path / "p"), "--grid2", "2", "--grid3", "2", "--steps", "20",
              "--starts", "2", "--no-progress"])
    assert e.value.code == 0
    res = read_json(tmp_path / "p" / "result.json")
    assert set(res) >= {"n2m1", "n3m2"} and (tmp_path / "p" / "n3m2.png").stat().st_size > 1000
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["phase", "protocols", "--out", str(tmp_path / "q"), "--starts", "1"])
    assert e.value.code == 2 and capsys.readouterr().err.startswith("error:")


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_protocols_refuse_a_seed_out_of_range_before_training(tmp_path, seed):
    from monosemantic.errors import InputError

    with pytest.raises(InputError, match="seed must lie"):
        diagrams.protocols_run(tmp_path / "p", 2, 2, steps=5, starts=2, seed=seed)
    assert not (tmp_path / "p").exists()


def test_protocols_refuse_a_diagram_that_cannot_fit_before_drawing_its_starts(tmp_path):
    from monosemantic.errors import InputError

    with pytest.raises(InputError, match="needs about"):
        diagrams.protocols_run(tmp_path / "p", 1000, 2, steps=5, starts=1000)
    assert not (tmp_path / "p").exists()
