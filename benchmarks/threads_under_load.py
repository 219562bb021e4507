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
depend on it). A control, a pure-Python loop run the same way, says what a busy core
costs any one-thread program on this machine (a VM's vCPUs are not always independent):
one-thread episodes should slow by that much and no more. On a 2-core machine,
``--threads 2`` is what torch would use by default. On a machine shared with other users,
``--niceness -10`` (root) runs the episode and the busy loop ahead of their load, which
otherwise takes the place of the "idle" core.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULT = re.compile(r"test loss (?P<loss>[0-9.]+) .*; (?P<seconds>[0-9.]+) s on (?P<threads>\d+) torch thread")


def episode(task: str, threads: int, extra: list[str], niceness: int = 0) -> tuple[float, float, float]:
    """(the episode's seconds and its test loss at the best-validation point, as ``lrgym episode``
    prints them; the CPU seconds of the whole command, start-up included)."""
    command = [sys.executable, "-m", "lrgym.cli", "episode", task, "--threads", str(threads), "--device", "cpu", *extra]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    finished = subprocess.run(command, capture_output=True, text=True, env=environment,
                              preexec_fn=lambda: os.nice(niceness))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    match = RESULT.search(finished.stdout)
    if finished.returncode != 0 or match is None or int(match["threads"]) != threads:
        raise RuntimeError(f"{' '.join(command)} exited with {finished.returncode}:\n{finished.stderr[-2000:]}")
    return float(match["seconds"]), float(match["loss"]), cpu


CONTROL = ("import time\nstarted = time.perf_counter()\nfor _ in range(20_000_000):\n    pass\n"
           "print(time.perf_counter() - started)")


def control(niceness: int = 0) -> float:
    """Seconds of a pure-Python loop (one thread, no torch): what the machine alone does to any
    single-threaded program when a core is busy."""
    finished = subprocess.run([sys.executable, "-c", CONTROL], capture_output=True, text=True, check=True,
                              preexec_fn=lambda: os.nice(niceness))
    return float(finished.stdout)


def busy_core(niceness: int = 0) -> subprocess.Popen:
    """A process spinning on the machine's last core (one busy core, as another user's job is)."""
    spin = "import os\nos.sched_setaffinity(0, {max(os.sched_getaffinity(0))})\nwhile True:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", spin], preexec_fn=lambda: os.nice(niceness))


def under(condition: str, niceness: int, run: Callable[[], Any]) -> Any:
    """``run()`` with a busy core (``condition == "busy"``) or without."""
    spinner = busy_core(niceness) if condition == "busy" else None
    try:
        return run()
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist1d-mlp")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts to compare")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--niceness", type=int, default=0,
        help="nice increment of the episode and the busy loop alike; on a machine other users load, a negative "
             "value (root only) makes their load recede, so that the busy core is the only one the episode meets",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    extra = [item for override in args.overrides for item in ("--set", override)]
    counts = [int(count) for count in args.threads.split(",")]
    cores = len(os.sched_getaffinity(0))
    print(f"{platform.machine()} {platform.system()}, {cores} cores, load average "
          f"{os.getloadavg()[0]:.2f} at the start; lrgym episode {args.task} {' '.join(extra)}; "
          f"niceness {args.niceness:+d}")
    started = time.perf_counter()
    seconds: dict[tuple[str, str], list[float]] = {}
    cpu_seconds: dict[tuple[str, str], list[float]] = {}
    losses: dict[tuple[str, str], set[float]] = {}
    for _ in range(args.repeats):
        for condition in ("idle", "busy"):
            for threads in counts:
                took, loss, cpu = under(condition, args.niceness,
                                        functools.partial(episode, args.task, threads, extra, args.niceness))
                seconds.setdefault((str(threads), condition), []).append(took)
                cpu_seconds.setdefault((str(threads), condition), []).append(cpu)
                losses.setdefault((str(threads), condition), set()).add(loss)
            took = under(condition, args.niceness, lambda: control(args.niceness))
            seconds.setdefault(("control", condition), []).append(took)
    print(f"\n{'threads':>7} {'idle s (min..max)':>22} {'busy s (min..max)':>22} {'busy/idle':>9} "
          f"{'CPU s idle':>10} {'CPU s busy':>10}  test losses")
    for key in [*map(str, counts), "control"]:
        idle, busy = seconds[key, "idle"], seconds[key, "busy"]
        ratio = statistics.median(busy) / statistics.median(idle)
        row = f"{key:>7} {_spread(idle):>22} {_spread(busy):>22} {ratio:>9.2f}"
        if key == "control":
            print(f"{row}  (a pure-Python loop, no torch: what a busy core costs any one-thread program here)")
            continue
        shown = sorted(losses[key, "idle"] | losses[key, "busy"])
        print(f"{row} {statistics.median(cpu_seconds[key, 'idle']):>10.1f} "
              f"{statistics.median(cpu_seconds[key, 'busy']):>10.1f}  {', '.join(f'{x:.4f}' for x in shown)}")
    print(f"\n{args.repeats} repeats in {time.perf_counter() - started:.0f} s; load average "
          f"{os.getloadavg()[0]:.2f} at the end")


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})"


if __name__ == "__main__":
    main()
