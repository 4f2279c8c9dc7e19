"""The Python API (`import monosemantic as ms`), the package's entry points and its optional extras."""
import json
import math
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import monosemantic as ms
from monosemantic.cli import main
from monosemantic.errors import InputError
from monosemantic.runs import save_tensors

TINY = dict(n=6, m=2, sparsity=[0.0, 0.9], steps=200, eval_batch=1024)


def test_import_is_light_and_every_public_name_resolves():
    # a fresh interpreter: importing the root loads no torch, no matplotlib
    code = "import sys, monosemantic; print(json.dumps(['torch' in sys.modules, 'matplotlib' in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False, False]
    for name in ms.__all__:
        assert getattr(ms, name) is not None, name
    assert "SparseAutoencoder" in dir(ms)
    with pytest.raises(AttributeError):
        ms.no_such_thing


def test_train_from_a_config_in_sparsity():
    cfg = ms.ToyTrainConfig(**TINY)
    toy = ms.train(cfg)
    assert toy.W.shape == (2, 2, 6) and toy.b.shape == (2, 6)  # [configs, m, n], [configs, n]
    assert len(toy.loss) == 2 and all(v > 0 for v in toy.loss)
    log = toy.result["train_loss_log"]
    assert log["steps"][-1] == 200 and len(log["loss"][-1]) == 2
    # fields override the config's; same seed, same numbers
    again = ms.train(cfg, steps=200)
    assert torch.equal(again.W, toy.W)
    assert not torch.equal(ms.train(cfg, seed=1).W, toy.W)
    rows = toy.measures()
    assert [r["sparsity"] for r in rows] == [0.0, 0.9] and len(rows[1]["feature_norm"]) == 6


def test_train_rejects_densities_out_of_range():
    with pytest.raises(InputError, match="sparsity"):
        ms.train(n=4, m=2, sparsity=[1.0], steps=10)


def test_save_and_load_run_round_trip(tmp_path):
    toy = ms.train(**TINY)
    path = toy.save(tmp_path / "toy")
    back = ms.load_run(path)
    assert back.config == toy.config and torch.equal(back.W, toy.W) and back.loss == toy.loss
    # the CLI reads what the API wrote
    with pytest.raises(SystemExit) as e:
        main(["toy", "measure", str(path)])
    assert e.value.code == 0 and (path / "measures.json").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"kind": "sae"}')
    (other / "result.json").write_text("{}")
    save_tensors(other / "model.safetensors", {"x": torch.zeros(1)})
    with pytest.raises(InputError, match="not a toy run"):
        ms.load_run(other)


def test_a_language_model_trains_and_loads_by_name(tmp_path):
    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n\n".join(f"document {i}: the quick brown fox jumps over the lazy dog" for i in range(300)))
    cfg = ms.LMTrainConfig(corpus=str(corpus), layers=1, d_model=16, heads=2, width=32, positions=16, context=16,
                           batch=8, tokens=8 * 16 * 4, eval_tokens=512)
    res = ms.train_lm(cfg, tmp_path / "lm")
    model, back = ms.load_lm(tmp_path / "lm")
    assert res["done"] and 0 < res["test_loss"] < math.log(256)
    assert isinstance(model, ms.ByteLM) and back == cfg and isinstance(back.model, ms.LMConfig)
    with torch.no_grad():
        assert model(torch.zeros(2, 16, dtype=torch.long)).shape == (2, 16, 256)  # [batch, context, bytes]


def test_python_m_monosemantic(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["monosemantic", "--help"])
    with pytest.raises(SystemExit) as e:
        runpy.run_module("monosemantic", run_name="__main__")
    assert e.value.code == 0 and "toy" in capsys.readouterr().out


def test_ray_backend_without_ray_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"name": "s", "base": {"n": 2, "m": 1, "steps": 10}, "grid": {"density": [0.5]}}))
    with pytest.raises(SystemExit) as e:
        main(["sweep", "run", str(spec), "--out", str(tmp_path / "o"), "--backend", "ray"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: the ray backend needs Ray: pip install 'monosemantic[ray]'"
    assert not (tmp_path / "o").exists()


def test_ray_client_addresses_are_refused_in_one_line():
    from monosemantic.experiments.sweeps import check_ray_address
    with pytest.raises(InputError, match=r"\(ray://\) are not supported"):
        check_ray_address("ray://127.0.0.1:10001")


@pytest.mark.slow
def test_the_readme_python_quick_start_runs(tmp_path, monkeypatch, capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README.md has no python block"
    assert len(blocks[0].strip().splitlines()) <= 12  # a quick start, not a program
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert "mmcs" in out and "support_f1" in out
    assert (tmp_path / "runs" / "quickstart" / "model.safetensors").exists()


def test_data_synth_creates_missing_parent_directories(tmp_path):
    out = tmp_path / "data" / "deeper" / "x.npz"
    with pytest.raises(SystemExit) as e:
        main(["data", "synth", "--n-features", "16", "--d", "4", "--k", "1", "--samples", "100", "--out", str(out)])
    assert e.value.code == 0 and ms.load_data(out).X.shape == (100, 4)


def test_openmp_threads_sleep_when_idle_unless_the_user_says_otherwise():
    code = "import os, monosemantic.config; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert out.stdout.strip() == "ACTIVE"
