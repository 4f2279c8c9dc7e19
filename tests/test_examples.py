"""The notebooks in examples/ (jupytext percent format) run from top to bottom on small settings."""
import runpy
from pathlib import Path

import matplotlib
import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(path, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("MONOSEMANTIC_QUICK", "1")
    monkeypatch.chdir(tmp_path)  # run directories land here
    assert path.read_text().startswith("# %% [markdown]")  # opens as a notebook
    runpy.run_path(str(path), run_name="__main__")
    plt.close("all")
