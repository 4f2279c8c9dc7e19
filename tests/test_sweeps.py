"""Sweeps: spec validation, deterministic groups, results independent of grouping, resume after an
interruption (in-process and SIGKILL), the local process pool and the Ray backend agreeing."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from monosemantic.errors import InputError
from monosemantic.cli import main
from monosemantic.runs import load_tensors
from monosemantic.experiments.sweeps import (MAX_WORKERS, SweepWarning, check_backend, parse_spec, plan, point_dir,
                                             run_sweep, train_group)

SMALL = {  # 6 points of n=2, m=1 in 3 groups of 2; a few hundred steps each
    "name": "small", "seed": 3, "max_group_points": 2,
    "base": {"n": 2, "m": 1, "steps": 300, "seeds": 1, "candidates": True, "eval_batch": 2048},
    "grid": {"importance_ratio": [0.3, 3.0], "density": [1.0, 0.3, 0.05]},
}


def _csv(path: Path) -> str:
    return (path / "results.csv").read_text()


@pytest.mark.parametrize("spec, message", [
    ({"grid": {"density": [0.5]}, "base": {"foo": 1}}, "base.foo: Extra inputs"),
    ({"grid": {"density": [0.5]}, "bar": 1}, "bar: Extra inputs"),
    ({"grid": {"foo": [0.5]}}, "grid.foo: unknown field"),
    ({"grid": {"density": []}}, "grid.density: empty axis"),
    ({"grid": {}}, "grid: "),
    ({"grid": {"density": [0.5]}, "base": {"steps": "many"}}, "base.steps: Input should be a valid integer"),
    ({"grid": {"density": [0.5, 1.5]}}, "grid point 1 (density=1.5): density: "),
    ({"grid": {"density": {"logspace": [0, 1, 3]}}}, "grid.density: logspace ends must be positive"),
    ({"grid": {"density": "abc"}}, "grid.density: expected a list"),
    ({"grid": {"density": [0.5]}, "base": {"n": 100_000, "m": 1000, "batch": 100_000}}, "needs about"),
    ({"grid": {"density": {"linspace": [0.01, 1, 1000]}, "importance_ratio": {"logspace": [0.1, 10, 1000]}}},
     "1000000 points is too many"),
    ({"grid": {"density": [0.5]}, "base": {"density": 0.3}}, "grid.density: also set in base"),
    ({"grid": {"density": [0.5]}, "base": {"seeds": 0}}, "no starts"),
])
def test_bad_specs_name_the_field(spec, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_spec(spec)


def test_cli_bad_spec_and_unreachable_ray_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[base]\nsteps = -3\n[grid]\ndensity = [0.5]\n')
    with pytest.raises(SystemExit) as e:
        main(["sweep", "run", str(bad), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: base.steps") and "\n" not in err
    good = tmp_path / "good.json"
    good.write_text(json.dumps(SMALL))
    with pytest.raises(SystemExit) as e:  # port 9 on localhost: nothing listens, refused at once
        main(["sweep", "run", str(good), "--out", str(tmp_path / "o"), "--backend", "ray", "--ray-address",
              "127.0.0.1:9"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "cannot reach the Ray cluster at 127.0.0.1:9" in err and "\n" not in err
    assert not (tmp_path / "o").exists()  # nothing started


def test_groups_are_a_function_of_the_spec():
    base = {k: v for k, v in SMALL["base"].items() if k != "steps"}
    spec = parse_spec({**SMALL, "base": base, "grid": {**SMALL["grid"], "steps": [300, 400]}})
    points, groups = plan(spec)
    assert plan(spec)[1] == groups
    assert sorted(i for g in groups for i in g) == list(range(12))
    for g in groups:  # one shape per group, at most max_group_points, in grid order
        assert len({points[i]["config"].steps for i in g}) == 1 and len(g) <= 2 and g == sorted(g)
    even = parse_spec({**SMALL, "max_group_points": 4})  # 6 points split evenly: 3 + 3
    assert [len(g) for g in plan(even)[1]] == [3, 3]


@pytest.mark.parametrize("n, m", [(2, 1), (5, 2)])  # the element-wise and the bmm gradient paths
def test_a_points_result_does_not_depend_on_its_group(n, m):
    spec = parse_spec({"seed": 1, "base": {"n": n, "m": m, "steps": 150, "seeds": 2, "eval_batch": 1024},
                       "grid": {"density": [1.0, 0.2, 0.05]}})
    configs = [pt["config"].model_dump() for pt in plan(spec)[0]]
    together = train_group(configs, spec.seed)["points"]
    alone = train_group(configs[1:2], spec.seed)["points"][0]
    reordered = train_group([configs[2], configs[1]], spec.seed)["points"][1]
    for other in (alone, reordered):
        assert torch.allclose(torch.from_numpy(other["tensors"]["W"]), torch.from_numpy(together[1]["tensors"]["W"]),
                              atol=1e-6)
        assert other["result"]["loss"] == pytest.approx(together[1]["result"]["loss"], rel=1e-5)


def test_resume_skips_finished_points_and_reruns_corrupt_ones(tmp_path):
    spec = parse_spec(SMALL)
    ref = tmp_path / "ref"
    meta = run_sweep(spec, ref, workers=1)
    assert meta["trained_points"] == 6 and meta["status"] == "complete"
    rows = _csv(ref).splitlines()
    assert len(rows) == 7 and rows[0].startswith("index,importance_ratio,density,loss")

    # interrupted after the first group (Ctrl-C while training the second)
    cut = tmp_path / "cut"

    def interrupt(done, total):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, cut, workers=1, on_group=interrupt)
    assert sorted(p.name for p in (cut / "points").iterdir()) == ["p00000", "p00001"]
    kept = (cut / "points" / "p00000" / "model.safetensors").stat().st_mtime_ns
    meta = run_sweep(spec, cut, workers=1)
    assert meta["trained_points"] == 4 and meta["trained_groups"] == 2
    assert (cut / "points" / "p00000" / "model.safetensors").stat().st_mtime_ns == kept  # not retrained
    assert _csv(cut) == _csv(ref)

    # a corrupt file, a half-written directory and a vanished point: re-run with warnings, same numbers
    (cut / "points" / "p00002" / "result.json").write_text("{not json")
    (cut / "points" / "p00004" / "model.safetensors").unlink()
    shutil.rmtree(cut / "points" / "p00005")
    (cut / "points" / ".p00005.abc.tmp").mkdir()  # a killed write's leftovers
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = run_sweep(spec, cut, workers=1)
    messages = [str(w.message) for w in caught if issubclass(w.category, SweepWarning)]
    assert len(messages) == 2 and "point 2" in messages[0] and "point 4" in messages[1]
    assert meta["trained_points"] == 3
    assert _csv(cut) == _csv(ref)
    assert not list((cut / "points").glob(".p*"))

    with pytest.raises(InputError, match="holds a different sweep"):
        run_sweep(parse_spec({**SMALL, "seed": 4}), cut, workers=1)


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    spec = {**SMALL, "base": {**SMALL["base"], "steps": 1500}, "max_group_points": 1}  # 6 groups
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "monosemantic.cli", "sweep", "run", str(path), "--out", str(out), "--workers", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "points" / "p00000").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = [p.name for p in (out / "points").iterdir() if not p.name.startswith(".")]
    assert 1 <= len(done) < 6  # killed mid-sweep
    subprocess.run(cmd, check=True, capture_output=True)
    ref = tmp_path / "ref"
    run_sweep(parse_spec(spec), ref, workers=1)
    assert _csv(out) == _csv(ref)


@pytest.mark.slow
def test_process_pool_and_ray_give_the_same_results(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'monosemantic[ray]')")
    spec = parse_spec(SMALL)
    run_sweep(spec, tmp_path / "one", workers=1)
    run_sweep(spec, tmp_path / "pool", workers=2)  # spawned worker processes
    run_sweep(spec, tmp_path / "ray", backend="ray", workers=2)  # a local Ray started for the run
    for other in ("pool", "ray"):
        assert _csv(tmp_path / other) == _csv(tmp_path / "one")
        W = load_tensors(point_dir(tmp_path / other, 3) / "model.safetensors")["W"]
        assert torch.equal(W, load_tensors(point_dir(tmp_path / "one", 3) / "model.safetensors")["W"])
    meta = json.loads((tmp_path / "ray" / "sweep.json").read_text())
    assert meta["backend"] == "ray" and meta["status"] == "complete"


def test_an_interrupted_first_run_removes_its_bare_out_but_keeps_work_beside_the_points(tmp_path):
    from monosemantic.experiments.sweeps import Points

    with pytest.raises(KeyboardInterrupt):
        with Points(tmp_path / "bare", "t", {"a": 1}):
            raise KeyboardInterrupt
    assert not (tmp_path / "bare").exists()  # nothing was computed: nothing left behind
    out = tmp_path / "kept"
    with pytest.raises(KeyboardInterrupt):
        with Points(out, "t", {"a": 1}):
            (out / "train").mkdir()  # a job's own work, e.g. training checkpoints
            (out / "train" / "step-100").write_text("x")
            raise KeyboardInterrupt
    assert (out / "train" / "step-100").read_text() == "x"
    with Points(out, "t", {"a": 1}) as pts:  # the same settings resume in it
        assert pts.run([], lambda: None) == {}
    assert (out / "train" / "step-100").is_file()


@pytest.mark.slow
def test_map_calls_on_local_processes_returns_every_job():
    import math

    from monosemantic.experiments.sweeps import map_calls

    jobs = list(enumerate([(3,), (4,), (5,)]))
    assert dict(map_calls(math.factorial, jobs, workers=2)) == {0: 6, 1: 24, 2: 120}


@pytest.mark.parametrize("workers", [0, MAX_WORKERS + 1, 2**31])
def test_a_worker_count_out_of_range_is_refused_before_any_pool(workers):
    # 2**31 processes overflowed the process pool's C-int queue as a traceback
    with pytest.raises(InputError, match="workers must be at"):
        check_backend("local", workers, None)
