"""`monosemantic demo` quiet and beside other CPU-bound processes: wall time, CPU time, and their ratio.

The target: with one other CPU-bound process on a 2-core machine, the demo takes at most 2.5x its quiet time.
Each run is a fresh `monosemantic demo` process with the environment `make demo` gives it (no OMP_NUM_THREADS),
or with the intra-op threads set by --threads; the burners are `while True: pass` processes started before it
and killed after. CPU time is the demo process's own (user + system), from getrusage.

usage: python benchmarks/demo_under_load.py [--quick] [--burners 1] [--threads 0] [--runs quiet,loaded]
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402


def demo(quick: bool, threads: int) -> tuple[float, float, str]:
    """(wall s, CPU s, the per-section lines) of one demo in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory() as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "monosemantic.cli", "demo", "--out", out, "--no-progress",
                            *(["--quick"] if quick else [])], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        raise SystemExit(f"demo failed ({p.returncode}): {p.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the quick demo (shortened training)")
    ap.add_argument("--burners", type=int, default=1, help="CPU-bound processes beside the loaded run")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: torch's default)")
    ap.add_argument("--runs", default="quiet,loaded", help="which runs, in order: quiet and/or loaded")
    a = ap.parse_args()
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}", flush=True)
    what = f"{'quick ' if a.quick else ''}demo, threads {a.threads or 'default'}"
    rows = {}
    for run in a.runs.split(","):
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                   for _ in range(a.burners if run == "loaded" else 0)]
        try:
            load = os.getloadavg()[0]
            wall, cpu, lines = demo(a.quick, a.threads)
        finally:
            for b in burners:
                b.kill()
        rows[run] = (wall, cpu)
        print(f"{what}, {run}{f' ({a.burners} burner)' if burners else ''}: wall {wall:.0f} s, "
              f"CPU {cpu / 60:.1f} CPU-minutes (load average at start {load:.1f})", flush=True)
        print("  " + " | ".join(line.split(": ", 1)[-1] for line in lines.splitlines() if line.startswith("demo ")),
              flush=True)
    if "quiet" in rows and "loaded" in rows:
        print(f"loaded / quiet wall: {rows['loaded'][0] / rows['quiet'][0]:.2f}x (target <= 2.5x)")


if __name__ == "__main__":
    main()
