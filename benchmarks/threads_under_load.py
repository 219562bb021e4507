"""`lrgym episode` on an idle machine and with a second core kept busy, by torch thread count, side by side.

    python benchmarks/threads_under_load.py                               # mnist1d-mlp, --threads 1 and 2, 3 repeats
    python benchmarks/threads_under_load.py --task mnist1d-lenet --threads 1 --repeats 5

Each repetition runs the real command (``python -m lrgym.cli episode TASK --threads N``, a
new process each time) once with nothing added and once while a busy-loop process spins
on the last CPU core, interleaved so that the machine's own load hits both alike. Reported
per thread count: the episode's seconds as the command prints them (median over the
repeats, min..max), the ratio busy / idle (1.00: the busy core costs nothing), the CPU
seconds of the whole command (start-up included: threads that wait for each other spin)
and the test losses (with one thread they must be the same under load: the result does not
depend on it). On a 2-core machine, ``--threads 2`` is what torch would use by default.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = re.compile(r"test loss (?P<loss>[0-9.]+) .*; (?P<seconds>[0-9.]+) s on (?P<threads>\d+) torch thread")


def episode(task: str, threads: int, extra: list[str]) -> tuple[float, float, float]:
    """(the episode's seconds and its test loss at the best-validation point, as ``lrgym episode``
    prints them; the CPU seconds of the whole command, start-up included)."""
    command = [sys.executable, "-m", "lrgym.cli", "episode", task, "--threads", str(threads), "--device", "cpu", *extra]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    finished = subprocess.run(command, capture_output=True, text=True, env=environment)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    match = RESULT.search(finished.stdout)
    if finished.returncode != 0 or match is None or int(match["threads"]) != threads:
        raise RuntimeError(f"{' '.join(command)} exited with {finished.returncode}:\n{finished.stderr[-2000:]}")
    return float(match["seconds"]), float(match["loss"]), cpu


def busy_core() -> subprocess.Popen:
    """A process spinning on the machine's last core (one busy core, as another user's job is)."""
    spin = "import os\nos.sched_setaffinity(0, {max(os.sched_getaffinity(0))})\nwhile True:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", spin])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist1d-mlp")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts to compare")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    extra = [item for override in args.overrides for item in ("--set", override)]
    counts = [int(count) for count in args.threads.split(",")]
    cores = len(os.sched_getaffinity(0))
    print(f"{platform.machine()} {platform.system()}, {cores} cores, load average "
          f"{os.getloadavg()[0]:.2f} at the start; lrgym episode {args.task} {' '.join(extra)}")
    started = time.perf_counter()
    seconds: dict[tuple[int, str], list[float]] = {}
    cpu_seconds: dict[tuple[int, str], list[float]] = {}
    losses: dict[tuple[int, str], set[float]] = {}
    for _ in range(args.repeats):
        for threads in counts:
            for condition in ("idle", "busy"):
                spinner = busy_core() if condition == "busy" else None
                try:
                    took, loss, cpu = episode(args.task, threads, extra)
                finally:
                    if spinner is not None:
                        spinner.kill()
                        spinner.wait()
                seconds.setdefault((threads, condition), []).append(took)
                cpu_seconds.setdefault((threads, condition), []).append(cpu)
                losses.setdefault((threads, condition), set()).add(loss)
    print(f"\n{'threads':>7} {'idle s (min..max)':>22} {'busy s (min..max)':>22} {'busy/idle':>9} "
          f"{'CPU s idle':>10} {'CPU s busy':>10}  test losses")
    for threads in counts:
        idle, busy = seconds[threads, "idle"], seconds[threads, "busy"]
        shown = sorted(losses[threads, "idle"] | losses[threads, "busy"])
        print(f"{threads:>7} {_spread(idle):>22} {_spread(busy):>22} "
              f"{statistics.median(busy) / statistics.median(idle):>9.2f} "
              f"{statistics.median(cpu_seconds[threads, 'idle']):>10.1f} "
              f"{statistics.median(cpu_seconds[threads, 'busy']):>10.1f}  {', '.join(f'{x:.4f}' for x in shown)}")
    print(f"\n{args.repeats} repeats in {time.perf_counter() - started:.0f} s; load average "
          f"{os.getloadavg()[0]:.2f} at the end")


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})"


if __name__ == "__main__":
    main()
