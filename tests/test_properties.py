"""Property-based tests (hypothesis): every CLI command's options and every loader, fed random sizes and signs,
NaN/inf, huge integers, garbage text; truncated, corrupt and lying files (safetensors, JSON, .npz, .npy); wrong
dtypes and shapes; paths that are missing, under a file, dangling links, unicode or NUL.

The property: exit 0, or one `error:` line and exit 2. Never a traceback, never a hang, and nothing written before
(the inputs and a user's directory) changes. Options that set how long a run takes (steps, samples, trials) draw
small or invalid values only: a valid billion steps is a long run, not a bug. Examples are derandomized, so a
failure reproduces; TRIED counts what was tried (printed at the end with `pytest -s`)."""
from __future__ import annotations

import io
import json
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monosemantic.data import load_data, read_toy_run, save_data, synth_uniform
from monosemantic.dictionary import load as load_dictionary_dir
from monosemantic.errors import InputError
from monosemantic.experiments.sweeps import load_spec
from monosemantic.experiments.unfolding import load_dictionary
from monosemantic.runs import read_run
from test_reliability import SAE, TOY, TRIED, cli, ok, tree

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.filter_too_much, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs every example may read, a user's directory no example may touch, and a scratch area."""
    d = tmp_path_factory.mktemp("world")
    save_data(d / "data.npz", synth_uniform(20, 8, 2, 700, seed=0))
    np.save(d / "x.npy", synth_uniform(20, 8, 2, 300, seed=2).X)
    ok(cli(*SAE, "--data", d / "data.npz", "--out", d / "sae"))
    ok(cli(*TOY, "--sparsity", 0, 0.9, "--out", d / "toy"))
    ok(cli(*TOY, "--model", "relu-hidden", "--sparsity", 0, 0.9, "--out", d / "hid"))
    from monosemantic.dictionary import SparseAutoencoder

    SparseAutoencoder("topk", 3, k=1, samples=512, batch=128).fit(
        np.random.default_rng(0).random((512, 2), dtype=np.float32)).save(d / "hdict")  # width m=2: hid's hidden
    # activations, so circuits need not fit a dictionary of its own
    (d / "corpus.txt").write_text("\n%\n".join(f"Fortune {i}: the quick brown fox jumps over the lazy dog" for i in
                                                range(30)) + "\n")
    ok(cli("sae", "train", "--arch", "pca", "--latents", 4, "--data", d / "data.npz", "--out", d / "pca",
           "--no-progress"))
    (d / "spec.json").write_text(json.dumps({"name": "p", "base": {"n": 2, "m": 1, "steps": 10, "batch": 16,
                                                                    "eval_batch": 32, "seeds": 1},
                                             "grid": {"density": [1.0, 0.5]}}))
    ok(cli("real", "sae", "--no-progress", *REAL_SAE, "--corpus", d / "corpus.txt", "--stores", d / "stores",
           "--out", d / "rsae"))  # what `real browse` reads
    (d / "afile").write_text("not a directory")
    (d / "dangling").symlink_to(d / "nowhere")
    (d / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (d / "user").mkdir()
    (d / "user" / "notes.txt").write_text("mine, not the tool's")
    (d / "scratch").mkdir()
    return d


# a `real sae` run of a few hundred tokens: the smallest its batch of 256 allows
REAL_SAE = ["--train-tokens", "256", "--test-tokens", "32", "--expansion", "1", "--k", "2", "--epochs", "1",
            "--splice-texts", "1", "--saelens", "off"]
# a byte-level LM of one block, 16 wide, trained on a few hundred bytes
LM = ["--layers", "1", "--d-model", "16", "--context", "16", "--tokens", "256"]


def _frozen(world: Path) -> dict:
    return {name: tree(world / name) for name in ("sae", "toy", "hid", "pca", "user", "rsae", "stores")} | {
        name: (world / name).read_bytes() for name in ("data.npz", "x.npy", "spec.json", "afile", "corpus.txt")}


def check(world: Path, before: dict, args: list, name: str = "") -> None:
    """The property, for one command line."""
    here = set(Path.cwd().iterdir())
    code, _, err = cli(*args, kind="command lines")
    if name and not isinstance(code, BaseException):
        TRIED[f"{name} exit {code}"] = TRIED.get(f"{name} exit {code}", 0) + 1
    if isinstance(code, BaseException):
        raise AssertionError(f"traceback on {args}: {type(code).__name__}: {code}") from code
    assert code in (0, 2), (args, code, err)
    TRIED[f"cli exit {code}"] = TRIED.get(f"cli exit {code}", 0) + 1
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) > 10, (args, err)
    now = _frozen(world)
    lost = [f"{name}/{f}" for name, files in before.items() if isinstance(files, dict)
            for f, content in files.items() if now[name].get(f) != content]
    lost += [name for name, content in before.items() if not isinstance(content, dict) and now[name] != content]
    assert not lost, f"{args} changed or removed {lost}"  # new files (measures.json, scores.json) are allowed
    # only the command's own output may appear in scratch (no temporary leftovers)
    stray = [p.name for p in (world / "scratch").iterdir() if p.name.startswith(".") and str(p) not in args]
    assert not stray, (args, stray)
    assert set(Path.cwd().iterdir()) == here, (args, "wrote into the working directory")


# ---- values

HUGE = [2**31, 2**63, 2**64, 10**9, 10**30]
SHORT = ["--steps", "20", "--batch", "32", "--eval-batch", "64"]
BAD_NUMBERS = ["nan", "inf", "-inf", "1e300", "-1e300", "five", "", "0x10", "1_000", "--", "٣"]


def ints(lo: int = -3, hi: int = 40, huge: bool = True):
    """Small integers of both signs (most draws, so that some command lines are valid), huge ones (sizes) and
    text that is not an integer."""
    small = st.integers(lo, hi)
    return st.one_of(small, small, small, small, st.sampled_from(HUGE if huge else [0, -1]),
                     st.sampled_from(BAD_NUMBERS))


def floats(lo: float = -2.0, hi: float = 2.0):
    small = st.floats(lo, hi, allow_nan=False)
    return st.one_of(small, small, small, small, st.sampled_from(BAD_NUMBERS + [1e-320, -0.0, 1e30]))


def out_paths(world: Path):
    """Output paths: new (unicode names included), existing user data, under a file, dangling link, '' and NUL."""
    scratch = world / "scratch"
    new = st.integers(0, 10**6).map(lambda i: str(scratch / f"out{i}"))
    return st.one_of(
        new, new, new,
        st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=12)
        .filter(lambda s: s not in (".", "..") and not s.startswith("-")).map(lambda s: str(scratch / s)),
        st.sampled_from([str(world / "user"), str(world / "afile" / "x"), str(world / "dangling"), "",
                         str(scratch / "a\x00b"), str(world / "afile"), str(scratch / "ünï cødé ✓")]))


def in_files(world: Path, good: list[str]):
    return st.sampled_from([str(world / g) for g in good] + [
        str(world / "missing.npz"), str(world / "afile"), str(world / "garbage.npz"), str(world / "dangling"),
        str(world / "user"), str(world / "spec.json"), str(world / "toy" / "model.safetensors"), "", "ñ.npy"])


@st.composite
def argv(draw, options: dict):
    """A command line from {flag: strategy}: a few flags (so that many lines are valid) or any number of them."""
    most = draw(st.sampled_from([1, 2, len(options)])) if options else 0
    flags = draw(st.lists(st.sampled_from(sorted(options)), max_size=most, unique=True)) if options else []
    values = {flag: draw(options[flag]) for flag in flags}
    return [tok for flag, v in values.items() for tok in ([flag] if v is True else [flag, v]) if v is not False]


# ---- every command

def commands(world: Path) -> dict[str, tuple[list[str], dict, int]]:
    out, data, sae = out_paths(world), in_files(world, ["data.npz", "x.npy"]), in_files(world, ["sae", "pca", "data.npz"])
    # valid inputs and outputs first in each head: a drawn flag comes later and wins
    o, d = ["--out", str(world / "scratch" / "run")], ["--data", str(world / "data.npz")]
    small = dict(steps=ints(-2, 30, huge=False), batch=ints(-2, 64), seeds=ints(-1, 3), seed=ints(-2, 5))
    toy_train = {"--n": ints(-1, 8), "--m": ints(-1, 4), "--steps": small["steps"], "--batch": small["batch"],
                 "--seeds": small["seeds"], "--seed": st.one_of(small["seed"], st.just(2**64)),
                 "--eval-batch": ints(-1, 64), "--sparsity": floats(-0.5, 1.5), "--lr": floats(),
                 "--importance-decay": floats(), "--weight-decay": floats(), "--warmup": ints(-1, 30, huge=False),
                 "--model": st.sampled_from(["linear", "relu-output", "relu-hidden", "abs", "cubic", ""]),
                 "--schedule": st.sampled_from(["constant", "cosine", "wavy"]), "--l1": floats(),
                 "--correlated-sets": ints(-1, 3), "--set-size": ints(-1, 4), "--overwrite": st.booleans()}
    road = {"--n": ints(-1, 8), "--m": ints(-1, 4), "--steps": small["steps"], "--batch": small["batch"],
            "--seeds": small["seeds"], "--eval-batch": ints(-1, 64), "--importance-decay": floats(),
            "--seed": small["seed"], "--overwrite": st.booleans()}
    return {
        # each head sets small sizes first: a drawn flag comes later and wins; a default would be a long run
        "toy train": (["toy", "train", "--no-progress", *SHORT, *o], {"--out": out, **toy_train}, 20),
        "toy measure": (["toy", "measure"], {}, 8),
        "data synth": (["data", "synth", "--samples", "200", "--out", str(world / "scratch" / "d.npz")], {
            "--out": out.map(lambda p: p + ".npz" if p else p), "--kind": st.sampled_from(["uniform", "sharkey", "toy", "x"]),
            "--n-features": ints(-1, 30), "--d": ints(-1, 10), "--k": floats(-1, 40), "--samples": ints(-1, 200),
            "--seed": st.one_of(small["seed"], st.sampled_from([2**64, -(2**70)])), "--decay": floats(),
            "--correlation": floats(), "--run": in_files(world, ["toy", "sae"]), "--instance": ints(-2, 3),
            "--overwrite": st.booleans()}, 20),
        "sae train": (["sae", "train", "--no-progress", "--samples", "256", "--batch", "64", "--latents", "16", *o, *d], {
            "--data": data, "--out": out, "--arch": st.sampled_from(["topk", "relu", "batchtopk", "jumprelu", "mbdl",
                                                                      "pca", "ica", "gated"]),
            "--latents": ints(-1, 24), "--k": ints(-1, 30), "--samples": ints(-1, 400, huge=False),
            "--batch": ints(-1, 64), "--lr": floats(), "--l1": floats(), "--l0": floats(), "--alpha": floats(),
            "--seed": small["seed"], "--checkpoint": st.one_of(out, st.just(str(world / "user"))),
            "--checkpoint-every": ints(-1, 5, huge=False), "--overwrite": st.booleans()}, 15),
        "sae score": (["sae", "score"], {"--truth": data, "--n-eval": ints(-2, 800)}, 10),
        "unfold": (["unfold", *o, *d, "--dictionary", str(world / "sae")], {"--data": data, "--dictionary": sae, "--out": out,
                                "--method": st.sampled_from(["omp", "l1", "fista", "sae", "magic"]),
                                "--tol": floats(-1, 2), "--k": ints(-1, 20), "--alpha": floats(),
                                "--positive": st.booleans(), "--overwrite": st.booleans()}, 15),
        "features list": (["features", "list"], {"--data": data, "--top": ints(-1, 10), "--limit": ints(-1, 10),
                                                 "--sort": st.sampled_from(["frequency", "atom", "max", "cosine", "x"]),
                                                 "--out": out, "--json": st.booleans()}, 10),
        "features describe": (["features", "describe"], {"--data": data, "--sample": ints(-2, 800), "--out": out,
                                                         "--json": st.booleans()}, 10),
        "transition": (["transition", "--trials", "2", "--m", "4", "--n-over-m", "2", *o], {"--out": out, "--m": ints(-1, 6), "--n-over-m": ints(-1, 3),
                                        "--trials": ints(-1, 3, huge=False),
                                        "--methods": st.sampled_from(["omp", "l1", "both", ""]),
                                        "--seed": st.one_of(small["seed"], st.just(2**70))}, 6),
        "sweep run": (["sweep", "run", "--no-progress", *o], {"--out": out, "--workers": ints(-2, 1),
                                                          "--backend": st.sampled_from(["local", "slurm"]),
                                                          "--ray-address": st.sampled_from(["nowhere", "127.0.0.1:1",
                                                                                            "x:y"])}, 10),
        "phase n2m1": (["phase", "n2m1", "--no-progress", "--workers", "1", "--grid", "2", "--steps", "20",
                        "--seeds", "1", *o], {
            "--out": out, "--grid": ints(-1, 3, huge=False), "--steps": small["steps"], "--seeds": ints(-1, 2, huge=False),
            "--seed": small["seed"]}, 5),
        "road1 l1": (["road1", "l1", "--no-progress", *SHORT, *o], {"--out": out, "--l1": floats(-1, 1),
                                                        "--model": st.sampled_from(["relu-hidden", "linear"]),
                                                        "--sparsity": floats(-0.5, 1.5), **road}, 8),
        "road1 moe": (["road1", "moe", "--no-progress", *SHORT, *o], {"--out": out, "--experts": ints(-1, 3, huge=False),
                                                          "--k": ints(-1, 3, huge=False), "--balance": floats(),
                                                          "--sparsity": floats(-0.5, 1.5), **road}, 6),
        # always a bad --out: a good one (or the default) runs the whole demo
        "demo": (["demo", "--quick", "--out"], {}, 4),
        "circuits": (["circuits", *o, "--dictionary", str(world / "hdict")], {
            "--out": out, "--dictionary": in_files(world, ["hdict", "sae", "hdict"]), "--instance": ints(-3, 3),
            "--overwrite": st.booleans()}, 5),
        "road2 toy": (["road2", "toy", "--no-progress", "--workers", "1", "--shape", "6x2", "--sparsity", "0.9",
                       "--expansion", "1", "--archs", "topk", "--steps", "20", "--samples", "300", *o], {
            "--out": out, "--shape": st.sampled_from(["6x2", "0x2", "6x0", "6by2", "x", "1e9x2", "6x2x1", "-6x2",
                                                      "100000000x2"]),
            "--sparsity": floats(-0.5, 1.5), "--expansion": floats(-1, 70), "--steps": small["steps"],
            "--archs": st.sampled_from(["topk", "relu", "mbdl", "nmf", ""]), "--samples": ints(-1, 400, huge=False),
            "--seed": st.one_of(small["seed"], st.just(2**64)), "--workers": ints(-2, 1),
            "--backend": st.sampled_from(["local", "slurm"]), "--ray-address": st.sampled_from(["nowhere", "x:y"]),
            "--overwrite": st.booleans()}, 10),
        "road3": (["road3", "--no-progress", "--workers", "1", "--device", "cpu", "--n", "6", "--m", "2",
                   "--strength", "noise=0.1", "--road1-l1", "0.3", "--steps", "20", "--batch", "32", "--samples", "300",
                   *o], {
            "--out": out, "--n": ints(-1, 8), "--m": ints(-1, 4), "--sparsity": floats(-0.5, 1.5),
            "--strength": st.sampled_from(["l1=0.01", "coherence=1,10", "joint=1", "noise=-0.1", "dropout=1",
                                           "noise=0.1,0.1", "l1", "joint=nan"]),
            "--road1-l1": floats(-1, 2), "--joint-latents": ints(-1, 8), "--joint-k": ints(-1, 8),
            "--steps": small["steps"], "--batch": small["batch"], "--samples": ints(-1, 400, huge=False),
            "--seed": small["seed"], "--seeds": ints(-1, 2, huge=False), "--workers": ints(-2, 1),
            "--backend": st.sampled_from(["local", "slurm"]), "--overwrite": st.booleans()}, 10),
        # a local Ray is never drawn (a cluster's start-up is not what is tested here)
        "real capture": (["real", "capture", "--no-progress", "--corpus", str(world / "corpus.txt"), "--tokens",
                          "64", *o], {
            "--out": out, "--corpus": st.one_of(in_files(world, ["corpus.txt"]), st.sampled_from(["fortunes", "x"])),
            "--site": st.sampled_from(["resid.0", "mlp.2", "resid.9", "attn.1", ""]), "--tokens": ints(-1, 200),
            "--split": st.sampled_from(["train", "test", "all", "dev"]), "--shard-tokens": ints(-1, 64),
            "--context": ints(-1, 600), "--backend": st.sampled_from(["local", "slurm"]),
            "--ray-address": st.sampled_from(["nowhere", "127.0.0.1:1"]), "--workers": ints(-2, 2)}, 6),
        "toy dynamics": (["toy", "dynamics", "--no-progress", "--n", "6", "--m", "2", "--steps", "20",
                          "--snapshot-every", "5", *o], {
            "--out": out, "--n": ints(-1, 8), "--m": ints(-1, 4), "--sparsity": floats(-0.5, 1.5),
            "--steps": small["steps"], "--snapshot-every": ints(-1, 30), "--seeds": ints(-1, 2, huge=False),
            "--seed": st.one_of(small["seed"], st.just(2**64))}, 6),
        "toy privileged": (["toy", "privileged", "--no-progress", "--sparsity", "0.9", "--steps", "20", "--seeds", "1",
                            *o], {"--out": out, "--sparsity": floats(-0.5, 1.5), "--steps": small["steps"],
                                  "--seeds": ints(-1, 2, huge=False), "--seed": small["seed"]}, 5),
        "toy computation": (["toy", "computation", "--no-progress", "--n", "6", "--m", "3", "--sparsity", "0.9",
                             "--steps", "20", "--seeds", "1", *o], {
            "--out": out, "--n": ints(-1, 8), "--m": ints(-1, 4), "--sparsity": floats(-0.5, 1.5),
            "--steps": small["steps"], "--seeds": ints(-1, 2, huge=False), "--seed": small["seed"]}, 5),
        "toy adversarial": (["toy", "adversarial", "--no-progress", "--sparsity", "0.9", "--steps", "20", "--seeds",
                             "1", *o], {"--out": out, "--sparsity": floats(-0.5, 1.5), "--steps": small["steps"],
                                        "--seeds": ints(-1, 2, huge=False), "--norm": floats(-1, 3),
                                        "--seed": small["seed"]}, 5),
        "phase uniform": (["phase", "uniform", "--no-progress", "--workers", "1", "--device", "cpu", "--n", "6", "--m",
                           "2", "--levels", "5", "--steps", "20", *o], {
            "--out": out, "--n": ints(-1, 8), "--m": ints(-1, 4), "--levels": ints(-1, 7, huge=False),
            "--steps": small["steps"], "--seeds": ints(-1, 2, huge=False), "--seed": small["seed"],
            "--backend": st.sampled_from(["local", "slurm"]), "--ray-address": st.sampled_from(["nowhere", "x:y"]),
            "--workers": ints(-2, 1), "--device": st.sampled_from(["cpu", "cuda:7", "tpu", ""]),
            "--epsilon": floats(-1, 2)}, 5),
        "phase protocols": (["phase", "protocols", "--no-progress", "--grid2", "2", "--grid3", "2", "--steps", "20",
                             "--seeds", "2", *o], {
            "--out": out, "--grid2": ints(-1, 3, huge=False), "--grid3": ints(-1, 3, huge=False),
            "--steps": small["steps"], "--seeds": ints(-1, 3, huge=False), "--seed": small["seed"]}, 5),
        "road1 effective-size": (["road1", "effective-size", "--no-progress", "--device", "cpu", "--n", "6", "--m",
                                  "2", "--sparsity", "0.9", "--seeds", "1", *SHORT, *o], {
            "--out": out, "--sparsity": floats(-0.5, 1.5), "--device": st.sampled_from(["cpu", "cuda:7", "tpu"]),
            **road}, 6),
        "real sites": (["real", "sites"], {"--model": st.sampled_from(
            ["minilm", "gpt-17", "", str(world / "user"), str(world / "afile"), str(world / "dangling"),
             str(world / "rsae")])}, 4),
        "real sae": (["real", "sae", "--no-progress", *REAL_SAE, "--corpus", str(world / "corpus.txt"), "--stores",
                      str(world / "scratch" / "stores"), *o], {
            "--out": out, "--stores": st.one_of(out, st.just(str(world / "stores"))),
            "--site": st.sampled_from(["resid.3", "mlp.0", "resid.9", "attn.1", ""]),
            "--neuron-site": st.sampled_from(["mlp.3", "resid.2", "mlp.6", "x"]),
            "--corpus": st.one_of(in_files(world, ["corpus.txt"]), st.sampled_from(["x"])),
            "--train-tokens": ints(-1, 300, huge=False), "--test-tokens": ints(-1, 64, huge=False),
            "--expansion": ints(-1, 2, huge=False), "--k": ints(-1, 8), "--epochs": ints(-1, 2, huge=False),
            "--splice-texts": ints(-1, 3), "--seed": st.one_of(small["seed"], st.just(2**64)),
            "--saelens": st.sampled_from(["off", "auto", "on", "bogus"]), "--overwrite": st.booleans()}, 6),
        "real browse": (["real", "browse"], {"--out": out.map(lambda p: p + ".html" if p else p)}, 5),
        "lm train": (["lm", "train", "--no-progress", "--device", "cpu", *LM, "--heads", "2", "--width", "32", "--positions", "16",
                      "--batch", "4", "--eval-tokens", "64", "--corpus", str(world / "corpus.txt"), *o], {
            "--out": out, "--variant": st.sampled_from(["dense", "l1", "moe-flop", "moe-width", "hybrid-joint", "x"]),
            "--strength": floats(), "--layers": ints(-1, 2, huge=False), "--d-model": ints(-1, 32),
            "--heads": ints(-1, 4), "--width": ints(-1, 64), "--experts": ints(-1, 4), "--top-k": ints(-1, 5),
            "--positions": ints(-1, 32), "--corpus": st.one_of(in_files(world, ["corpus.txt"]), st.just("x")),
            "--context": ints(-1, 32), "--batch": ints(-1, 8), "--tokens": ints(-1, 512, huge=False),
            "--lr": floats(), "--weight-decay": floats(), "--warmup": floats(-0.5, 1.5),
            "--eval-tokens": ints(-1, 128, huge=False), "--checkpoint-every": ints(-1, 10),
            "--seed": st.one_of(small["seed"], st.just(2**64)), "--device": st.sampled_from(["cpu", "cuda:7", "tpu"])},
                     8),
        "lm roads": (["lm", "roads", "--no-progress", "--workers", "1", "--seeds", "1", *LM, "--width", "32",
                      "--experts", "2", "--measure-tokens", "64", "--sae-latents", "16", "--sae-k", "2",
                      "--sae-samples", "256", "--corpus", str(world / "corpus.txt"), *o], {
            "--out": out, "--l1": st.sampled_from(["0.001,0.003,0.01,0.03", "0.1", "1,nan,2,3", "-1,0,1,2", "x,y",
                                                   "1,2,3,4,5"]),
            "--hybrid": floats(), "--seeds": ints(-1, 2, huge=False), "--layers": ints(-1, 2, huge=False),
            "--d-model": ints(-1, 32), "--width": ints(-1, 64), "--experts": ints(-1, 4),
            "--context": ints(-1, 32), "--tokens": ints(-1, 512, huge=False),
            "--measure-tokens": ints(-1, 128, huge=False), "--mono-bytes": ints(-1, 4),
            "--sae-latents": ints(-1, 32), "--sae-k": ints(-1, 40), "--sae-samples": ints(-1, 400, huge=False),
            "--backend": st.sampled_from(["local", "slurm"]), "--workers": ints(-2, 1),
            "--ray-address": st.sampled_from(["nowhere", "x:y"]), "--overwrite": st.booleans()}, 5),
        "report": (["report", "--out", str(world / "scratch" / "rep")], {"--out": out}, 5),
    }


# positional arguments, drawn with the options
POSITIONAL = {
    "toy measure": lambda w: in_files(w, ["toy", "sae"]),
    "sae score": lambda w: in_files(w, ["sae", "pca"]),
    "features list": lambda w: in_files(w, ["sae", "pca", "data.npz"]),
    "features describe": lambda w: in_files(w, ["sae", "data.npz"]),
    "sweep run": lambda w: in_files(w, ["spec.json"]),
    "demo": lambda w: st.sampled_from([str(w / "afile" / "d"), "", str(w / "dangling"), str(w / "afile")]),
    "circuits": lambda w: in_files(w, ["hid", "toy", "hid"]),
    "real browse": lambda w: in_files(w, ["rsae", "rsae", "sae"]),
    "report": lambda w: in_files(w, ["toy", "sae", "pca", "hid"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["toy train", "toy measure", "data synth", "sae train", "sae score", "unfold",
                                  "features list", "features describe", "transition", "sweep run", "phase n2m1",
                                  "road1 l1", "road1 moe", "demo", "circuits", "road2 toy", "road3",
                                  "real capture", "toy dynamics", "toy privileged", "toy computation",
                                  "toy adversarial", "phase uniform", "phase protocols", "road1 effective-size",
                                  "real sites", "real sae", "real browse", "lm train", "lm roads", "report"])
def test_every_command_gives_a_result_or_one_line(world, name):
    head, options, examples = commands(world)[name]
    positional = POSITIONAL.get(name, lambda w: st.just(None))(world)
    before = _frozen(world)

    @settings(max_examples=examples, **SETTINGS)
    @given(positional, argv(options))
    def prop(pos, args):
        try:
            check(world, before, head + ([pos] if pos is not None else []) + args, name)
        finally:  # each example starts from an empty scratch directory
            for p in (world / "scratch").iterdir():
                p.unlink() if p.is_file() or p.is_symlink() else shutil.rmtree(p)

    prop()


# ---- every loader, on corrupt, truncated and lying files

def _valid_bytes(kind: str) -> bytes:
    d = synth_uniform(6, 4, 2, 12, seed=0)
    with tempfile.TemporaryDirectory() as t:
        path = Path(t) / f"f.{kind}"
        save_data(path, d)
        return path.read_bytes()


VALID = {k: _valid_bytes(k) for k in ("npz", "npy", "safetensors")}


@st.composite
def damaged(draw, kind: str) -> bytes:
    """A valid file of `kind`, then truncated, with bytes flipped, or with its header's length lying."""
    b = bytearray(VALID[kind])
    how = draw(st.sampled_from(["truncate", "flip", "header", "garbage", "empty"]))
    if how == "truncate":
        return bytes(b[: draw(st.integers(0, len(b) - 1))])
    if how == "flip":
        for i in draw(st.lists(st.integers(0, len(b) - 1), min_size=1, max_size=8)):
            b[i] ^= draw(st.integers(1, 255))
        return bytes(b)
    if how == "header" and kind == "safetensors":
        return struct.pack("<Q", draw(st.integers(0, 2**64 - 1))) + bytes(b[8:])
    if how == "header" and kind == "npy":  # the shape in the header, rewritten to lie
        text = bytes(b[:128]).decode("latin1")
        shape = draw(st.tuples(st.integers(0, 10**12), st.integers(0, 10**6)))
        lied = text.replace("(12, 4)", str(shape)).ljust(len(text))[: len(text)]
        return lied.encode("latin1") + bytes(b[128:])
    if how == "garbage":
        return draw(st.binary(min_size=1, max_size=300))
    return b""


def arrays():
    """Arrays with wrong dtypes and shapes and non-finite values."""
    dtype = st.sampled_from([np.float32, np.float64, np.float16, np.int8, np.int64, np.uint8, np.bool_,
                             np.complex64, "U3", "S2"])
    shape = st.sampled_from([(), (0,), (5,), (0, 4), (5, 0), (5, 4), (5, 4, 2), (1, 1)])
    fill = st.sampled_from([0.0, 1.0, np.nan, np.inf, -np.inf, 6e4, -7.0])
    return st.tuples(dtype, shape, fill).map(lambda t: np.full(t[1], t[2] if np.dtype(t[0]).kind in "fc" else 1,
                                                               dtype=t[0]))


@st.composite
def lying_files(draw) -> tuple[str, bytes]:
    """A data file of random arrays under our names: X, F and codes that may disagree in every way."""
    kind = draw(st.sampled_from(["npz", "safetensors", "npy"]))
    names = draw(st.lists(st.sampled_from(["X", "F", "indptr", "indices", "values", "D", "meta", "other"]),
                          min_size=0, max_size=5, unique=True))
    arrs = {n: draw(arrays()) for n in names}
    buf = io.BytesIO()
    try:
        if kind == "npy":
            np.save(buf, arrs.get("X", draw(arrays())), allow_pickle=False)
        elif kind == "npz":
            np.savez(buf, **arrs)
        else:
            from safetensors.numpy import save

            buf.write(save({k: v for k, v in arrs.items() if v.dtype.kind in "fiub" and v.ndim}))
    except (ValueError, TypeError):  # numpy or safetensors refuses to write it: no file to try
        return kind, b""
    return kind, buf.getvalue()


def _loaders_ok(kind: str, fn, *args) -> None:
    TRIED[kind] = TRIED.get(kind, 0) + 1
    try:
        fn(*args)
    except InputError as e:
        assert str(e) and "\n" not in str(e).strip()


@pytest.mark.slow
@settings(max_examples=100, **SETTINGS)
@given(st.one_of(st.sampled_from(["npz", "npy", "safetensors"]).flatmap(lambda k: damaged(k).map(lambda b: (k, b))),
                 lying_files()))
def test_data_loaders_refuse_damaged_or_lying_files(tmp_path, kb):
    kind, data = kb
    path = tmp_path / f"f.{kind}"
    path.write_bytes(data)
    _loaders_ok("data file loads", load_data, path)
    _loaders_ok("data file loads", load_data, path, True)
    _loaders_ok("data file loads", load_dictionary, path)


def json_values():
    return st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
                                  st.text(max_size=8)),
                        lambda kids: st.one_of(st.lists(kids, max_size=4),
                                               st.dictionaries(st.text(max_size=6), kids, max_size=4)),
                        max_leaves=12)


@st.composite
def edited_json(draw, original: dict):
    """The original JSON object with keys dropped, values replaced by random JSON, or the whole text garbage."""
    how = draw(st.sampled_from(["drop", "replace", "whole", "text"]))
    obj = json.loads(json.dumps(original))
    if how == "text":
        return draw(st.text(max_size=40))
    if how == "whole":
        return json.dumps(draw(json_values()))
    keys = draw(st.lists(st.sampled_from(sorted(obj)), min_size=1, max_size=3, unique=True))
    for k in keys:
        if how == "drop":
            obj.pop(k)
        else:
            obj[k] = draw(json_values())
    return json.dumps(obj)


@pytest.mark.slow
@settings(max_examples=50, **SETTINGS)
@given(st.data())
def test_directory_loaders_refuse_edited_json(world, tmp_path_factory, data):
    which = data.draw(st.sampled_from([("toy", "config.json"), ("toy", "result.json"), ("sae", "cfg.json"),
                                       ("pca", "cfg.json"), ("sae", "config.json")]))
    d = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())) / which[0]
    shutil.copytree(world / which[0], d)
    original = json.loads((d / which[1]).read_text())
    (d / which[1]).write_text(data.draw(edited_json(original)))
    if which[0] == "toy":
        _loaders_ok("edited json loads", read_toy_run, d)
        _loaders_ok("edited json loads", read_run, d)
        code, _, err = cli("toy", "measure", d, kind="edited json commands")
    else:
        _loaders_ok("edited json loads", load_dictionary_dir, d)
        code, _, err = cli("sae", "score", d, "--truth", world / "data.npz", kind="edited json commands")
    assert code == 0 or code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), (code, err)


@pytest.mark.slow
@settings(max_examples=40, **SETTINGS)
@given(st.one_of(json_values().map(json.dumps), st.text(max_size=60),
                 edited_json({"name": "p", "seed": 0, "max_group_points": 4,
                              "base": {"n": 2, "m": 1, "steps": 10}, "grid": {"density": [1.0, 0.5]}})))
def test_sweep_specs_refuse_garbage(tmp_path, text):
    for suffix in (".json", ".toml"):
        p = tmp_path / f"spec{suffix}"
        p.write_text(text)
        _loaders_ok("sweep specs", load_spec, p)


def test_zz_print_what_was_tried():
    """With -s: how many inputs the property tests ran (the report's count)."""
    print(f"\ninputs tried: {sum(TRIED.values())} ({', '.join(f'{k} {v}' for k, v in sorted(TRIED.items()))})",
          file=sys.stderr)
