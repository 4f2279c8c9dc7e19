"""Nothing lost, never a traceback: one test per kind of failure a hostile user found (data loss, checkpoints not
bound to their inputs, sweeps that could not finish, sizes with no limit, tracebacks, silent acceptances,
leftovers, no lock). `cli` runs the real entry point in-process and is shared by test_properties and test_faults."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import resource
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from monosemantic.cli import main
from monosemantic.data import Data, load_data, save_data, synth_uniform
from monosemantic.errors import InputError
from monosemantic.experiments import sweeps
from monosemantic.experiments.sweeps import parse_spec, run_sweep

TRIED: dict[str, int] = {}  # inputs tried per kind, over the session (printed by test_properties)


def cli(*args, kind: str = "cli") -> tuple[int | BaseException, str, str]:
    """(exit code, stdout, stderr) of `monosemantic ARGS` run in-process, as Typer's test runner does; an exception
    other than SystemExit (a traceback for a user) is returned in place of the code."""
    TRIED[kind] = TRIED.get(kind, 0) + 1
    with CliRunner().isolation() as (out, err, _):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code
        except BaseException as e:  # noqa: BLE001  (what a user would see as a traceback)
            code = e
        return code, out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace")


def refused(result, *words: str) -> str:
    """Assert one `error:` line naming every word, exit 2; return the line."""
    code, _, err = result
    if isinstance(code, BaseException):
        raise AssertionError(f"traceback: {type(code).__name__}: {code}") from code
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def ok(result) -> str:
    code, out, err = result
    if isinstance(code, BaseException):
        raise AssertionError(f"traceback: {type(code).__name__}: {code}") from code
    assert code == 0, err
    return out


@contextlib.contextmanager
def file_size_cap(nbytes: int):
    """Writes beyond `nbytes` fail with EFBIG (a full disk, as root can have one without mounting anything)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def tree(path: Path) -> dict[str, bytes]:
    """Every file under path (names relative to it) with its bytes: 'nothing lost' compares two of these."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def without_timings(obj):
    """A result without what differs between two runs of the same work: timings (keys ending in _s), rates, the
    count of points computed now, tensors."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items()
                if not k.endswith("_s") and k not in ("computed", "model_steps_per_s", "tensors")}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def interrupted_at_call(fn, n: int):
    """fn, except that its n-th call raises KeyboardInterrupt (a Ctrl-C, or a kill, while that job runs)."""
    calls = []

    def wrapped(*args):
        calls.append(args)
        if len(calls) == n:
            raise KeyboardInterrupt
        return fn(*args)
    return wrapped


TOY = ["toy", "train", "--n", 5, "--m", 2, "--steps", 20, "--batch", 32, "--eval-batch", 64, "--no-progress"]
SAE = ["sae", "train", "--latents", 16, "--k", 2, "--samples", 640, "--batch", 64, "--no-progress"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A data file, a trained SAE directory and a toy run, small."""
    d = tmp_path_factory.mktemp("inputs")
    save_data(d / "data.npz", synth_uniform(20, 8, 2, 700, seed=0))
    save_data(d / "other.npz", synth_uniform(20, 8, 2, 700, seed=1))
    ok(cli(*SAE, "--data", d / "data.npz", "--out", d / "sae"))
    ok(cli(*TOY, "--sparsity", 0, 0.9, "--out", d / "toy"))
    return d


# ---- 1. data loss


def test_checkpoint_never_replaces_a_users_directory(files, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a week of notes")
    refused(cli(*SAE, "--data", files / "data.npz", "--out", tmp_path / "o", "--checkpoint", mine),
            "not empty", "holds no checkpoint")
    assert tree(mine) == {"notes.txt": b"a week of notes"} and not (tmp_path / "o").exists()
    ok(cli(*SAE, "--data", files / "data.npz", "--out", tmp_path / "o", "--checkpoint", tmp_path / "new"))


@pytest.mark.parametrize("content", [{"notes.txt": "mine"}, {"config.json": '{"lr": 1}'},
                                     {"cfg.json": '{"architecture": "topk", "d_in": 8}'}])  # SAELens's own
def test_overwrite_replaces_only_a_directory_we_wrote(tmp_path, content):
    out = tmp_path / "run"
    out.mkdir()
    for name, text in content.items():
        (out / name).write_text(text)
    before = tree(out)
    refused(cli(*TOY, "--out", out, "--overwrite"), "not written by monosemantic")
    assert tree(out) == before
    ok(cli(*TOY, "--out", tmp_path / "ours"))
    ok(cli(*TOY, "--out", tmp_path / "ours", "--overwrite", "--seed", 1))  # an earlier run of ours is replaced
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["seed"] == 1


# ---- 2. checkpoints bound to their inputs


def test_checkpoint_refuses_other_data_and_other_parameters(files, tmp_path):
    ck = tmp_path / "ck"
    ok(cli(*SAE, "--data", files / "data.npz", "--out", tmp_path / "a", "--checkpoint", ck, "--checkpoint-every", 3))
    before = tree(ck)
    refused(cli(*SAE, "--data", files / "other.npz", "--out", tmp_path / "b", "--checkpoint", ck), "other data")
    refused(cli(*SAE, "--data", files / "data.npz", "--out", tmp_path / "c", "--checkpoint", ck, "--seed", 3),
            "other parameters", "seed")
    assert tree(ck) == before and not (tmp_path / "b").exists()


@pytest.mark.parametrize("arch", ["mbdl", "pca", "ica"])
def test_classical_learners_refuse_a_checkpoint(files, tmp_path, arch):
    refused(cli("sae", "train", "--arch", arch, "--latents", 4, "--data", files / "data.npz", "--out", tmp_path / "o",
                "--checkpoint", tmp_path / "ck"), "checkpoint", arch)


@pytest.mark.parametrize("edit", [lambda j: j.pop("step"), lambda j: j.update(step="ten"),
                                  lambda j: j.update(adam_t=-1), lambda j: j.clear(), "[1, 2]", "{not json"])
def test_a_hand_edited_trainer_json_is_one_line(files, tmp_path, edit):
    ck = tmp_path / "ck"
    ok(cli(*SAE, "--data", files / "data.npz", "--out", tmp_path / "a", "--checkpoint", ck))
    if isinstance(edit, str):
        (ck / "trainer.json").write_text(edit)
    else:
        info = json.loads((ck / "trainer.json").read_text())
        edit(info)
        (ck / "trainer.json").write_text(json.dumps(info))
    refused(cli(*SAE, "--data", files / "data.npz", "--out", tmp_path / "b", "--checkpoint", ck), str(ck))


def test_checkpoint_and_out_the_same_directory_is_refused_before_training(files, tmp_path):
    refused(cli(*SAE, "--data", files / "data.npz", "--out", tmp_path / "x", "--checkpoint", tmp_path / "x"),
            "different directories")
    assert not (tmp_path / "x").exists()


# ---- 3. sweeps that can never finish, 7. leftovers, 9. no lock

SPEC = {"name": "t", "seed": 0, "base": {"n": 2, "m": 1, "steps": 30, "batch": 32, "eval_batch": 64, "seeds": 1},
        "grid": {"density": [1.0, 0.3]}}


def test_a_point_with_loss_but_no_measures_is_trained_again(tmp_path):
    spec = parse_spec(SPEC)
    run_sweep(spec, tmp_path / "s", workers=1)
    ref = (tmp_path / "s" / "results.csv").read_text()
    res = tmp_path / "s" / "points" / "p00001" / "result.json"
    res.write_text(json.dumps({k: v for k, v in json.loads(res.read_text()).items() if k != "measures"}))
    with pytest.warns(sweeps.SweepWarning, match="point 1"):
        meta = run_sweep(spec, tmp_path / "s", workers=1)
    assert meta["trained_points"] == 1 and (tmp_path / "s" / "results.csv").read_text() == ref


def test_a_diverged_point_is_not_a_success(tmp_path):
    spec = parse_spec({**SPEC, "base": {**SPEC["base"], "lr": 1e30}})
    with pytest.raises(InputError, match="diverged"):
        run_sweep(spec, tmp_path / "s", workers=1)
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["status"] == "diverged"
    assert not (tmp_path / "s" / "results.csv").exists()
    code, _, err = cli("sweep", "run", _spec_file(tmp_path, {**SPEC, "base": {**SPEC["base"], "lr": 1e30}}),
                       "--out", tmp_path / "s", "--workers", 1, "--no-progress")
    refused((code, "", err), "diverged", "lower lr")


def _spec_file(tmp_path: Path, spec: dict) -> Path:
    p = tmp_path / "spec.json"
    p.write_text(json.dumps(spec))
    return p


def test_a_second_sweep_into_the_same_directory_is_refused(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    with open(out / ".lock", "a+") as held:  # a sweep running into OUT holds this lock
        held.write("4242")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        refused(cli("sweep", "run", _spec_file(tmp_path, SPEC), "--out", out, "--workers", 1), "another sweep",
                "4242")
    assert not (out / "points").exists()
    ok(cli("sweep", "run", _spec_file(tmp_path, SPEC), "--out", out, "--workers", 1, "--no-progress"))


@pytest.mark.parametrize("workers", [0, -3])
def test_workers_must_be_positive(tmp_path, workers):
    refused(cli("sweep", "run", _spec_file(tmp_path, SPEC), "--out", tmp_path / "s", "--workers", workers), "workers")
    assert not (tmp_path / "s").exists()


def test_a_backend_that_fails_leaves_no_sweep_behind(tmp_path, monkeypatch):
    def unreachable(*a, **k):
        raise InputError("cannot start or join Ray at a new local instance: refused")
        yield  # a generator, as the real mappers

    monkeypatch.setattr(sweeps, "_mapper", unreachable)
    with pytest.raises(InputError, match="Ray"):
        run_sweep(parse_spec(SPEC), tmp_path / "s", workers=1)
    assert not (tmp_path / "s").exists()


def test_an_interrupted_swap_is_finished_and_a_stray_link_removed(files, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(files / "toy", run)
    before = tree(run)
    dead = 99_999_999  # above any pid_max: no such process
    os.replace(run, tmp_path / f".run.old-{dead}")  # killed between the two renames of a swap
    ok(cli("toy", "measure", run))
    assert {k: v for k, v in tree(run).items() if k != "measures.json"} == before
    (tmp_path / f".run.old-{dead}").symlink_to(run)
    ok(cli(*TOY, "--out", run, "--overwrite"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# ---- 4. sizes with no limit

HUGE = 10**9


@pytest.mark.parametrize("args", [
    TOY + ["--n", HUGE], TOY + ["--batch", HUGE], TOY + ["--eval-batch", HUGE], TOY + ["--seeds", HUGE],
    ["data", "synth", "--samples", HUGE], ["transition", "--m", 100_000],
    ["road1", "l1", "--batch", HUGE], ["road1", "moe", "--seeds", HUGE]])
def test_sizes_that_cannot_fit_are_refused_naming_estimate_and_limit(tmp_path, args):
    line = refused(cli(*args, "--out", tmp_path / "o.npz" if args[0] == "data" else tmp_path / "o"), "needs about",
                   "available")
    assert "GiB" in line or "TiB" in line
    assert not list(tmp_path.iterdir())


def test_sae_latents_and_features_top_cannot_exhaust_memory(files, tmp_path):
    refused(cli(*SAE, "--data", files / "data.npz", "--out", tmp_path / "o", "--latents", HUGE), "needs about")
    out = ok(cli("features", "list", files / "sae", "--data", files / "data.npz", "--top", HUGE, "--json"))
    assert all(len(r["top_samples"]) <= 700 for r in json.loads(out.splitlines()[0]))


# ---- 5. tracebacks instead of one line


@pytest.mark.parametrize("args, words", [
    (TOY + ["--seed", 2**64], "seed"), (["data", "synth", "--seed", 2**70], "seed"),
    (["transition", "--m", 4, "--seed", -1], "seed"), (SAE + ["--seed", 2**64], "seed")])
def test_seeds_beyond_64_bits(files, tmp_path, args, words):
    extra = ["--data", files / "data.npz"] if args[0] == "sae" else []
    refused(cli(*args, *extra, "--out", tmp_path / ("o.npz" if args[0] == "data" else "o")), words)


def test_large_seeds_within_64_bits_train(tmp_path):
    ok(cli(*TOY, "--seed", 10**14, "--out", tmp_path / "toy"))
    ok(cli("road3", "--seed", 2**63 - 2, "--seeds", 2, "--n", 6, "--m", 2, "--strength", "l1=0.01", "--road1-l1", 0.3,
           "--steps", 10, "--batch", 32, "--samples", 300, "--workers", 1, "--device", "cpu", "--no-progress",
           "--out", tmp_path / "r3"))
    refused(cli("road3", "--seed", 2**63 - 1, "--seeds", 2, "--out", tmp_path / "r4"), "seeds")


def test_tol_and_alpha_out_of_range(files, tmp_path):
    base = ["unfold", "--data", files / "data.npz", "--dictionary", files / "sae", "--out", tmp_path / "o"]
    refused(cli(*base, "--tol", 1e300), "tol")
    refused(cli(*base, "--method", "l1", "--alpha", "inf"), "alpha", "finite")
    refused(cli(*base, "--method", "l1", "--alpha", "nan"), "alpha")


def test_output_paths_that_cannot_be(files, tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for out in (tmp_path / "afile" / "run", tmp_path / "dangling", ""):
        refused(cli(*TOY, "--out", out))
        refused(cli("data", "synth", "--samples", 100, "--out", out if out else "", "--overwrite"))
    refused(cli("data", "synth", "--samples", 100, "--out", tmp_path / "afile" / "d.npz"))
    refused(cli("demo", "--quick", "--out", tmp_path / "afile" / "demo"), "afile")
    assert (tmp_path / "afile").read_text() == "x" and not (tmp_path / "nowhere").exists()


def test_a_full_disk_is_one_line_and_loses_nothing(files, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(files / "toy", run)
    shutil.copytree(files / "sae", tmp_path / "sae")
    before = {"run": tree(run), "sae": tree(tmp_path / "sae")}
    with file_size_cap(64):
        r = [cli("toy", "measure", run), cli("sae", "score", tmp_path / "sae", "--truth", files / "data.npz"),
             cli("data", "synth", "--samples", 100, "--out", tmp_path / "d.npz"),
             cli(*TOY, "--out", run, "--overwrite"),
             cli(*SAE, "--data", files / "data.npz", "--out", tmp_path / "sae", "--overwrite")]
    for result in r:
        refused(result, "file too large")
    assert {"run": tree(run), "sae": tree(tmp_path / "sae")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "sae"]  # no temporary leftovers


def test_cfg_json_whose_k_exceeds_its_latents(files, tmp_path):
    shutil.copytree(files / "sae", tmp_path / "sae")
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    cfg["k"] = 99
    (tmp_path / "sae" / "cfg.json").write_text(json.dumps(cfg))
    refused(cli("sae", "score", tmp_path / "sae", "--truth", files / "data.npz"), "cfg.json", "k")


# ---- 6. silently accepted


def test_n_eval_zero_is_refused(files):
    refused(cli("sae", "score", files / "sae", "--truth", files / "data.npz", "--n-eval", 0), "held-out")


@pytest.mark.parametrize("change, words", [
    (lambda t, c: t.update(W=t["W"][:, :, :4].contiguous()), "shape"),
    (lambda t, c: t.update(W=t["W"].double()), "float32"),
    (lambda t, c: c.update(model="cubic"), "cubic"),
    (lambda t, c: c.update(model="abs"), "W2"),
    (lambda t, c: c.update(n=6), "shape"),
    (lambda t, c: c.update(sparsity=[0.5]), "shape")])
def test_toy_weights_disagreeing_with_config_json(files, tmp_path, change, words):
    run = tmp_path / "run"
    shutil.copytree(files / "toy", run)
    t, c = load_file(run / "model.safetensors"), json.loads((run / "config.json").read_text())
    change(t, c)
    save_file(t, run / "model.safetensors")
    (run / "config.json").write_text(json.dumps(c))
    refused(cli("toy", "measure", run), words)
    refused(cli("data", "synth", "--kind", "toy", "--run", run, "--samples", 100, "--out", tmp_path / "d.npz"), words)


@pytest.mark.parametrize("change, words", [
    (lambda t, c: c.update(d_in=9), "d_in"), (lambda t, c: c.update(d_sae=17), "d_sae"),
    (lambda t, c: c.update(dtype="float16"), "dtype"), (lambda t, c: c.update(architecture="gated"), "gated"),
    (lambda t, c: t.update(W_dec=t["W_dec"].half()), "dtype"),
    (lambda t, c: t.update(b_enc=torch.zeros(16, dtype=torch.long)), "float")])
def test_sae_weights_disagreeing_with_cfg_json(files, tmp_path, change, words):
    sae = tmp_path / "sae"
    shutil.copytree(files / "sae", sae)
    t, c = load_file(sae / "sae_weights.safetensors"), json.loads((sae / "cfg.json").read_text())
    change(t, c)
    save_file(t, sae / "sae_weights.safetensors")
    (sae / "cfg.json").write_text(json.dumps(c))
    refused(cli("sae", "score", sae, "--truth", files / "data.npz"), words)


def test_a_truth_file_whose_x_is_not_c_f(files, tmp_path):
    d = load_data(files / "data.npz")
    lying = Data(d.X[::-1].copy(), d.F, d.codes, d.meta)  # every row's codes belong to another sample
    save_data(tmp_path / "lie.npz", lying)
    refused(cli("sae", "score", files / "sae", "--truth", tmp_path / "lie.npz"), "X is not codes @ F")
    np.save(tmp_path / "x.npy", d.X)  # no truth: nothing to contradict
    ok(cli("sae", "score", files / "sae", "--truth", tmp_path / "x.npy"))
