"""Fault tests: SIGKILL of toy training, a sweep, SAE training, road 2 on toys, road 3's front and a real capture at
seeded random moments, then a restart of the same command: its results equal an uninterrupted run's (bit for bit;
the resumable points' results without their timings), and nothing half-written is left. A killed
sweep's workers die with it. A full or read-only disk (a small tmpfs, where root can mount one) gives one line and
loses nothing written before.

Each scenario kills once per test run (FAULT_KILLS=n for more, FAULT_SEED for other moments): the report's
counts come from `FAULT_KILLS=10 pytest tests/test_faults.py`."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from test_reliability import TOY, cli, ok, refused, tree, without_timings

KILLS = int(os.environ.get("FAULT_KILLS", "1"))
SEED = int(os.environ.get("FAULT_SEED", "0"))
SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1",
       "MKL_NUM_THREADS": "1"}


def launch(args: list) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "monosemantic.cli", *map(str, args)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


_STARTUP: list[float] = []


def startup() -> float:
    """Seconds a fresh process takes to import the CLI (measured once)."""
    if not _STARTUP:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import monosemantic.cli"], env=ENV, check=True)
        _STARTUP.append(time.perf_counter() - t)
    return _STARTUP[0]


def finish(args: list) -> float:
    """Run to the end in this process (the reference and the restart: the kill needs its own process, they do
    not); the seconds a process of its own would take, start-up included (the range kill moments come from)."""
    t = time.perf_counter()
    ok(cli(*args))
    return time.perf_counter() - t + startup()


def finish_alone(args: list) -> float:
    """Run to the end in a process of its own (with ENV); its seconds, start-up included."""
    t = time.perf_counter()
    p = launch(args)
    _, err = p.communicate()
    assert p.returncode == 0, err.decode()
    return time.perf_counter() - t


def kill_at(args: list, delay: float) -> bool:
    """Start ARGS, SIGKILL it after `delay` seconds; True when it was killed before finishing."""
    p = launch(args)
    try:
        p.communicate(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.communicate()
        return True


def moments(wall: float) -> list[float]:
    """Seeded kill moments spread over a run that takes `wall` seconds (start-up included)."""
    rng = random.Random(SEED)
    return [rng.uniform(0.1, 1.0) * wall for _ in range(KILLS)]


def no_leftovers(parent: Path, keep: set[str]) -> None:
    assert sorted(p.name for p in parent.iterdir() if p.name not in keep) == [], list(parent.iterdir())


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path)


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


RESULTS: dict[str, list[int]] = {}  # scenario -> [kills, identical after restart]


def _tally(name: str, identical: bool) -> None:
    k = RESULTS.setdefault(name, [0, 0])
    k[0] += 1
    k[1] += identical


@pytest.mark.slow
def test_toy_training_killed_then_run_again(tmp_path):
    args = [a for a in TOY if a != "--steps" and a != 20] + ["--steps", 3000, "--n", 20, "--m", 5, "--seeds", 3,
                                                             "--sparsity", 0.9]
    wall = finish(args + ["--out", tmp_path / "ref"])
    ref = tensors(tmp_path / "ref" / "model.safetensors")
    for i, delay in enumerate(moments(wall)):
        work = tmp_path / f"k{i}"
        work.mkdir()
        kill_at(args + ["--out", work / "run"], delay)
        if (work / "run").exists():  # written whole or not at all
            assert same(tensors(work / "run" / "model.safetensors"), ref)
        finish(args + ["--out", work / "run", "--overwrite"])
        _tally("toy train", same(tensors(work / "run" / "model.safetensors"), ref))
        no_leftovers(work, {"run"})
    assert RESULTS["toy train"][1] == RESULTS["toy train"][0]


SPEC = """name = "faults"
seed = 0
max_group_points = 2
[base]
n = 6
m = 2
steps = 600
batch = 256
eval_batch = 1024
seeds = 2
[grid]
density = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003]
"""


def _sweep_state(out: Path) -> tuple[str, dict]:
    csv = (out / "results.csv").read_text()
    return csv, {p.name: tensors(p / "model.safetensors") for p in sorted((out / "points").iterdir())}


@pytest.mark.slow
def test_sweep_killed_then_resumed(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    args = ["sweep", "run", spec, "--workers", 1, "--no-progress", "--out"]
    wall = finish(args + [tmp_path / "ref"])
    ref_csv, ref_w = _sweep_state(tmp_path / "ref")
    for i, delay in enumerate(moments(wall)):
        out = tmp_path / f"k{i}"
        kill_at(args + [out], delay)
        finish(args + [out])
        csv, w = _sweep_state(out)
        _tally("sweep run", csv == ref_csv and w.keys() == ref_w.keys() and all(same(w[k], ref_w[k]) for k in w))
        no_leftovers(out / "points", set(ref_w))
    assert RESULTS["sweep run"][1] == RESULTS["sweep run"][0]


@pytest.mark.slow
def test_sae_training_killed_then_resumed_from_its_checkpoint(tmp_path):
    from monosemantic.data import save_data, synth_uniform

    save_data(tmp_path / "d.npz", synth_uniform(64, 16, 3, 4000, seed=0))
    args = ["sae", "train", "--data", tmp_path / "d.npz", "--latents", 64, "--k", 3, "--samples", 40_000,
            "--batch", 64, "--checkpoint-every", 50, "--no-progress"]
    wall = finish(args + ["--out", tmp_path / "ref", "--checkpoint", tmp_path / "ref_ck"])
    ref = tensors(tmp_path / "ref" / "sae_weights.safetensors")
    for i, delay in enumerate(moments(wall)):
        work = tmp_path / f"k{i}"
        work.mkdir()
        run = args + ["--out", work / "sae", "--checkpoint", work / "ck"]
        kill_at(run, delay)
        finish(run + ["--overwrite"])
        _tally("sae train", same(tensors(work / "sae" / "sae_weights.safetensors"), ref))
        no_leftovers(work, {"sae", "ck"})
    assert RESULTS["sae train"][1] == RESULTS["sae train"][0]


def _points_killed_then_resumed(tmp_path: Path, name: str, args: list) -> None:
    """A command on resumable points, SIGKILLed and run again: the same result as an uninterrupted run, every
    point directory whole, no point computed twice (the rerun computes only what the kill left missing)."""
    # every run in a process of its own with the killed run's thread settings: a point's numbers (BLAS reductions)
    # may differ in the last bit between thread counts
    wall = finish_alone(args + ["--out", tmp_path / "ref"])
    ref = without_timings(json.loads((tmp_path / "ref" / "result.json").read_text()))
    for i, delay in enumerate(moments(wall)):
        out = tmp_path / f"k{i}"
        kill_at(args + ["--out", out], delay)
        kept = {p.name: p.stat().st_mtime_ns for p in (out / "points").iterdir()} if (out / "points").exists() else {}
        finish_alone(args + ["--out", out])
        res = json.loads((out / "result.json").read_text())
        redone = [k for k, t in kept.items() if (out / "points" / k).stat().st_mtime_ns != t]
        _tally(name, without_timings(res) == ref and not redone and res["computed"] == res["points"] - len(kept))
        no_leftovers(out / "points", {p.name for p in (tmp_path / "ref" / "points").iterdir()})
    assert RESULTS[name][1] == RESULTS[name][0]


@pytest.mark.slow
def test_road2_toy_killed_then_resumed(tmp_path):
    _points_killed_then_resumed(tmp_path, "road2 toy", [
        "road2", "toy", "--shape", "20x5", "--sparsity", 0.9, 0.97, "--expansion", 0.5, 1, 2, "--archs", "topk",
        "--steps", 300, "--samples", 3000, "--workers", 1, "--no-progress"])


@pytest.mark.slow
def test_road3_killed_then_resumed(tmp_path):
    _points_killed_then_resumed(tmp_path, "road3", [
        "road3", "--strength", "noise=0,0.3", "--strength", "l1=0.01", "--road1-l1", 0.3, "--steps", 300, "--batch", 256,
        "--samples", 3000, "--workers", 1, "--device", "cpu", "--no-progress"])


@pytest.mark.slow
def test_real_capture_killed_then_resumed(tmp_path):
    """A kill mid-capture, then the same command: a complete store whose rows are an uninterrupted capture's,
    none duplicated or dropped (test_real checks a kill between a shard's files and the manifest)."""
    import numpy as np

    from monosemantic.real.store import Store

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n%\n".join(f"Fortune {i}: " + " ".join(["the quick brown fox jumps over the lazy dog"] *
                                                                  (1 + i % 5)) for i in range(200)) + "\n")
    args = ["real", "capture", "--corpus", corpus, "--site", "resid.2", "--tokens", 1600, "--shard-tokens", 200,
            "--no-progress", "--out"]
    wall = finish(args + [tmp_path / "ref"])
    ref = Store(tmp_path / "ref")
    for i, delay in enumerate(moments(wall)):
        out = tmp_path / f"k{i}"
        kill_at(args + [out], delay)
        finish(args + [out])
        got = Store(out)
        _tally("real capture", len(got) == len(ref) and np.array_equal(got.X[:], ref.X[:])
               and np.array_equal(got.doc, ref.doc) and np.array_equal(got.pos, ref.pos))
    assert RESULTS["real capture"][1] == RESULTS["real capture"][0]


def _children(pid: int) -> set[int]:
    kids = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.add(int(p.name))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc to find the workers")
def test_a_killed_sweep_leaves_no_worker_behind(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace("steps = 600", "steps = 200000"))
    p = launch(["sweep", "run", spec, "--workers", 2, "--no-progress", "--out", tmp_path / "s"])
    deadline, workers = time.time() + 120, set()
    while time.time() < deadline and len(workers) < 2:  # the pool's workers (and Python's resource tracker)
        workers = {c for c in _children(p.pid) if b"multiprocessing" in Path(f"/proc/{c}/cmdline").read_bytes()}
        time.sleep(0.2)
    assert len(workers) >= 2, "the sweep started no workers"
    p.send_signal(signal.SIGKILL)
    p.communicate()
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.2)
    left = [w for w in workers if _alive(w)]
    for w in left:  # do not leave them running on a shared machine even when the test fails
        os.kill(w, signal.SIGKILL)
    assert not left, f"workers {left} outlived their sweep"


# ---- a full or read-only disk


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root with CAP_SYS_ADMIN); test_reliability's "
                    "size-capped writes cover a full disk without one")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_and_a_read_only_disk_give_one_line_and_lose_nothing(small_disk):
    ok(cli(*TOY, "--out", small_disk / "run"))
    ok(cli("toy", "measure", small_disk / "run"))
    before = tree(small_disk / "run")
    try:  # fill the disk to its last bytes
        with open(small_disk / "filler", "wb", buffering=0) as f:
            while True:
                f.write(b"\0" * 4096)
    except OSError:
        pass
    refused(cli(*TOY, "--out", small_disk / "run2"), "no space left")
    refused(cli(*TOY, "--out", small_disk / "run", "--overwrite", "--seed", 3), "no space left")
    refused(cli("data", "synth", "--samples", 1000, "--out", small_disk / "d.npz"), "no space left")
    assert tree(small_disk / "run") == before
    no_leftovers(small_disk, {"run", "filler"})
    (small_disk / "filler").unlink()
    r = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot remount read-only: {r.stderr.decode().strip()}")
    refused(cli("toy", "measure", small_disk / "run"), "read-only file system")
    refused(cli(*TOY, "--out", small_disk / "run", "--overwrite"), "read-only")
    refused(cli("data", "synth", "--samples", 100, "--out", small_disk / "d.npz"), "read-only")
    assert tree(small_disk / "run") == before


def test_zz_print_kill_results():
    """With -s: the kill/restart scenarios and how many equal an uninterrupted run (the report's figures)."""
    for name, (kills, same_) in RESULTS.items():
        print(f"\n{name}: {kills} kills, {same_} identical after restart", file=sys.stderr)
