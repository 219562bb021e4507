"""The Ray backend's overhead on an evaluation sweep against the local process pool, side by side.

    RAY_USAGE_STATS_ENABLED=0 python benchmarks/ray_overhead.py            # 10 seeds x constant,cosine,step
    python benchmarks/ray_overhead.py --task mnist1d-mlp --seeds 10 --jobs 2 --repeats 2

Each repetition runs the same sweep (``lrgym.evaluation.evaluate.evaluate``: every agent on every
seed, the paired runs ``lrgym evaluate`` makes) twice, interleaved so machine noise
hits both: once on the local backend (``jobs`` spawned worker processes, started by
the sweep, as a command pays them) and once as Ray tasks on a local Ray instance with
``jobs`` CPUs. The instance is started once, before the first Ray sweep, and timed on
its own (Ray start-up: what a one-shot ``lrgym evaluate --backend ray`` pays on top).
Ray's worker processes are started by its first sweep and reused after it (as a
cluster keeps them), so the first Ray sweep is reported apart from later ones.

Ray's workers run at the driver's priority here (``RAY_worker_niceness=0``; Ray's default
lowers it by 15), as the local pool's do. Reported: seconds per sweep for each backend, the ratio Ray / local (1.00 = no
overhead), and the ratio with Ray's start-up added. Both sweeps must give the same
results (the script checks it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import lrgym  # noqa: F401
from lrgym.evaluation.evaluate import evaluate
from lrgym.runners.backend import Backend
from lrgym.runners.options import RunOptions
from lrgym.tasks.specs import load_task_spec


def sweep(task, agents: list[str], seeds: int, jobs: int, backend: Backend) -> tuple[float, float, list[dict]]:
    """(seconds for the sweep, mean seconds of one episode inside its worker, result rows without placement)."""
    started = time.perf_counter()
    options = RunOptions(jobs=jobs, env_options={"device": "cpu"}, progress=False, backend=backend)
    evaluation = evaluate(task, agents, list(range(seeds)), options)
    rows = [{k: v for k, v in row.items() if k not in ("node", "wall_time")} for row in evaluation.results]
    episode = statistics.mean(row["wall_time"] for row in evaluation.results)
    return time.perf_counter() - started, episode, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist1d-mlp")
    parser.add_argument("--agents", default="constant,cosine,step")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2, help="local worker processes = CPUs of the Ray instance")
    parser.add_argument("--repeats", type=int, default=2, help="local/Ray pairs (the first Ray sweep starts workers)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray runs its workers 15 nice levels below the driver by default; the local pool's
    # workers run at the driver's level. Equal priority, so a loaded machine slows both alike.
    os.environ.setdefault("RAY_worker_niceness", "0")

    import ray

    from lrgym.runners.ray_tasks import connect

    task = load_task_spec(args.task)
    agents = args.agents.split(",")
    print(f"{args.task}: {len(agents)} agents ({args.agents}) x {args.seeds} seeds, {args.jobs} jobs; "
          f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
          f"ray {ray.__version__}, worker niceness {os.environ['RAY_worker_niceness']}")
    local_times, ray_times = [], []
    startup = 0.0
    reference = None
    for repeat in range(args.repeats):
        seconds, episode, rows = sweep(task, agents, args.seeds, args.jobs, Backend("local"))
        local_times.append(seconds)
        reference = reference or rows
        print(f"repeat {repeat}: local {seconds:.1f} s (one episode {episode:.2f} s in its worker)", flush=True)
        if repeat == 0:
            startup = connect(Backend("ray", "local"), jobs=args.jobs)
            print(f"ray start-up (local instance, {args.jobs} CPUs): {startup:.1f} s", flush=True)
        seconds, episode, rows = sweep(task, agents, args.seeds, args.jobs, Backend("ray"))
        ray_times.append(seconds)
        if rows != reference:
            raise SystemExit("the Ray sweep's results differ from the local one's")
        print(f"repeat {repeat}: ray {seconds:.1f} s (one episode {episode:.2f} s in its worker)"
              + (", starting its workers" if repeat == 0 else ""), flush=True)
    ray.shutdown()

    local = statistics.median(local_times)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end; results identical on both backends")
    print("| backend | sweep (s) | ratio to local |")
    print("|---|---|---|")
    print(f"| local process pool ({args.jobs} workers), median of {len(local_times)} | {local:.1f} | 1.00 |")
    print(f"| ray, first sweep (starts the workers) | {ray_times[0]:.1f} | {ray_times[0] / local:.2f} |")
    if len(ray_times) > 1:
        warm = statistics.median(ray_times[1:])
        print(f"| ray, later sweeps (workers running), median of {len(ray_times) - 1} | {warm:.1f} | "
              f"{warm / local:.2f} |")
    print(f"| ray start-up + first sweep (a one-shot command) | {startup + ray_times[0]:.1f} | "
          f"{(startup + ray_times[0]) / local:.2f} |")
    print(f"ray start-up alone: {startup:.1f} s")


if __name__ == "__main__":
    main()
