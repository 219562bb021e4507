"""A two-node Ray cluster on this machine: a sweep across both nodes survives a killed worker.

    python -m tests.cluster_check [--seeds 4] [--timeout 300]

1. starts a head node and a second node with ``ray start --block`` (one CPU each, their
   own ``--temp-dir``, ``--node-ip-address=127.0.0.1``, usage reporting off);
2. runs ``lrgym evaluate ... --backend ray --ray-address HEAD`` and, as soon as a Ray
   worker is executing one of its runs, kills that worker process (SIGKILL);
3. checks that the sweep still completes, that its rows equal the local backend's (every
   column but ``node`` and ``wall_time``) and that both nodes ran rows;
4. starts two training envs as Ray actors (:class:`lrgym.vec_env.ray_actors.RayVecEnv`) and
   checks that ``SPREAD`` put one on each node;
5. always stops both nodes, whatever happened: it ends the processes it started (each
   ``ray start`` leads a process group; its Ray workers, which lead groups of their own,
   are found as descendants) and checks none is left. It does not run ``ray stop``, which
   ends *every* Ray process of the user on the machine, including clusters this check did
   not start.

Ray resolves a loopback ``--node-ip-address`` to the host's own address on Linux when
multi-node clusters are on (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``), so the nodes talk
over this host's address; nothing leaves the machine. Prints one ``ok: ...`` line per
check; exits 1 with the reason on the first failure.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--set", "steps=60", "--set", "interval=10", "--set", "batch_size=32", "--set", "val_size=200"]
AGENTS = "constant,cosine"
TASK_TITLE = "ray::_run_task"  # the process title of a Ray worker executing one of lrgym's runs


# Settings that would stop a second node joining (multi-node off) or point elsewhere.
CLUSTER_BREAKERS = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")


class CheckFailed(Exception):
    pass


def ray_executable() -> str:
    return str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment() -> dict[str, str]:
    """Usage reporting off; lrgym importable on the workers; a token of this check's own for
    Ray's token authentication (every node and the driver must present the same one)."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    inherited = {key: value for key, value in os.environ.items() if key not in CLUSTER_BREAKERS}
    return {
        **inherited, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": os.pathsep.join(paths),
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }


def start_node(arguments: list[str], temp_dir: Path, log: Path, env: dict[str, str]) -> subprocess.Popen:
    """``ray start --block`` in a new session: the node's processes share its process group."""
    command = [
        ray_executable(), "start", "--block", *arguments, "--node-ip-address=127.0.0.1", "--num-cpus=1",
        "--num-gpus=0", f"--temp-dir={temp_dir}", "--object-store-memory=100000000", "--disable-usage-stats",
        f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
    ]
    with open(log, "w") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_started(node: subprocess.Popen, log: Path, deadline: float) -> str:
    """Wait for ``ray start`` to report the runtime started; return the log text."""
    while time.monotonic() < deadline:
        text = log.read_text()
        if "Ray runtime started" in text:
            return text
        if node.poll() is not None:
            raise CheckFailed(f"ray start exited with {node.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    raise CheckFailed(f"ray start did not finish in time:\n{log.read_text()[-3000:]}")


def processes() -> list[tuple[int, int, int, str]]:
    """(pid, parent pid, process group, command line) of every process this user can see."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            found.append((int(entry.name), parent, os.getpgid(int(entry.name)), command))
        except (OSError, ProcessLookupError, IndexError, ValueError):
            continue
    return found


def cluster_processes(groups: set[int]) -> dict[int, str]:
    """The nodes' processes: their process groups, and every descendant (Ray workers lead
    process groups of their own, as children of their node's raylet)."""
    table = processes()
    ours = {pid: command for pid, _, group, command in table if group in groups}
    grew = True
    while grew:
        grew = False
        for pid, parent, _, command in table:
            if parent in ours and pid not in ours:
                ours[pid] = command
                grew = True
    return ours


def stop_nodes(nodes: list[subprocess.Popen], temp_root: Path) -> int:
    """End the nodes' processes (TERM, then KILL), then stragglers from ``temp_root``; return how many are left."""
    groups = {node.pid for node in nodes}
    ours = set(cluster_processes(groups))
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for pid in ours:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and ours & {pid for pid, *_ in processes()}:
            time.sleep(0.2)
        ours = (ours | set(cluster_processes(groups))) & {pid for pid, *_ in processes()}
    for node in nodes:
        try:
            node.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    alive = {pid for pid, *_ in processes()}
    return len((ours | {pid for pid, _, _, command in processes() if str(temp_root) in command}) & alive)


def kill_a_running_worker(sweep: subprocess.Popen, groups: set[int], deadline: float) -> int | None:
    """SIGKILL the first worker of the nodes seen executing a run; None if the sweep ended first."""
    while time.monotonic() < deadline and sweep.poll() is None:
        for pid, command in cluster_processes(groups).items():
            if command.startswith(TASK_TITLE):
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.05)
    return None


def local_results(seeds: int) -> list[dict]:
    from lrgym.evaluation.evaluate import evaluate
    from lrgym.runners.options import RunOptions
    from lrgym.tasks.specs import load_task_spec

    overrides = dict(item.split("=") for item in TINY[1::2])
    task = load_task_spec("mnist1d-mlp", **{key: int(value) for key, value in overrides.items()})
    return evaluate(task, AGENTS.split(","), list(range(seeds)), RunOptions(jobs=1, progress=False)).results


def comparable(rows: list[dict]) -> list[dict]:
    return [
        {key: value for key, value in row.items() if key not in ("node", "wall_time")}
        for row in sorted(rows, key=lambda row: (row["agent"], row["seed"]))
    ]


def check_actor_spread(address: str, expected_nodes: int) -> str:
    import ray

    from lrgym.runners.backend import Backend
    from lrgym.tasks.specs import load_task_spec
    from lrgym.vec_env.training import make_training_env

    try:
        overrides = dict(item.split("=") for item in TINY[1::2])
        task = load_task_spec("mnist1d-mlp", **{key: int(value) for key, value in overrides.items()})
        venv = make_training_env(task, 2, 10_000, {"device": "cpu", "data_dir": None, "download": False},
                                 backend=Backend("ray", address))
        try:
            observations = venv.reset()
            venv.step(venv.action_space.sample()[None].repeat(2, axis=0))
            if observations.shape != (2, *venv.observation_space.shape):
                raise CheckFailed(f"RayVecEnv.reset gave shape {observations.shape}")
            if len(set(venv.nodes)) != expected_nodes:
                raise CheckFailed(f"SPREAD placed the actors on {venv.placement()}")
            return venv.placement()
        finally:
            venv.close()
    finally:
        ray.shutdown()


def run(seeds: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    env = environment()
    os.environ.update({key: env[key] for key in ("RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")})
    for key in CLUSTER_BREAKERS:  # this process drives the actor check
        os.environ.pop(key, None)
    temp_root = Path(tempfile.mkdtemp(prefix="lrgym-rc-"))  # short: Ray's socket paths must stay < 108 bytes
    nodes: list[subprocess.Popen] = []
    sweep: subprocess.Popen | None = None
    try:
        started = time.monotonic()
        nodes.append(start_node(["--head", f"--port={free_port()}", "--include-dashboard=false",
                                 f"--ray-client-server-port={free_port()}"],
                                temp_root / "head", temp_root / "head.log", env))
        text = wait_started(nodes[0], temp_root / "head.log", deadline)
        match = re.search(r"ray start --address='([^']+)'", text)
        if not match:
            raise CheckFailed(f"no address in the head node's output:\n{text[-2000:]}")
        address = match.group(1)
        nodes.append(start_node([f"--address={address}"], temp_root / "worker", temp_root / "worker.log", env))
        wait_started(nodes[1], temp_root / "worker.log", deadline)
        print(f"ok: two nodes up at {address} in {time.monotonic() - started:.1f} s", flush=True)

        out = temp_root / "sweep"
        command = [
            sys.executable, "-m", "lrgym.cli", "evaluate", "mnist1d-mlp", "--agents", AGENTS,
            "--seeds", str(seeds), "--backend", "ray", "--ray-address", address, "--out", str(out), *TINY,
        ]
        started = time.monotonic()
        with open(temp_root / "sweep.log", "w") as log:
            sweep = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            killed = kill_a_running_worker(sweep, {node.pid for node in nodes}, deadline)
            if killed is None:
                raise CheckFailed("the sweep ended before a worker could be killed mid-run:\n"
                                  + (temp_root / "sweep.log").read_text()[-3000:])
            print(f"ok: killed worker process {killed} while it executed a run", flush=True)
            code = sweep.wait(timeout=max(1.0, deadline - time.monotonic()))
        if code != 0:
            raise CheckFailed(f"the sweep failed ({code}):\n{(temp_root / 'sweep.log').read_text()[-3000:]}")
        from lrgym.evaluation.evaluate import read_results

        rows = read_results(out / "results.csv")
        ran_on = sorted({row["node"] for row in rows})
        print(f"ok: sweep of {len(rows)} runs completed in {time.monotonic() - started:.1f} s "
              f"on {len(ran_on)} nodes: {', '.join(ran_on)}", flush=True)
        if len(ran_on) != 2:
            raise CheckFailed(f"expected rows from both nodes, got {ran_on}")
        if comparable(rows) != comparable(local_results(seeds)):
            raise CheckFailed("the cluster's results differ from the local backend's")
        print("ok: results equal the local backend's, row for row (node and wall_time aside)", flush=True)
        print(f"ok: {check_actor_spread(address, expected_nodes=2)}", flush=True)
    finally:
        if sweep is not None and sweep.poll() is None:
            sweep.kill()
            sweep.wait()
        left = stop_nodes(nodes, temp_root)
        shutil.rmtree(temp_root, ignore_errors=True)
        print(f"stopped both nodes ({left} of their processes left)", flush=True)
        if left:
            raise CheckFailed(f"{left} processes of the cluster are still running")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds per agent in the sweep (default 4)")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    args = parser.parse_args(argv)

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through run()'s clean-up, unlike the default action

    signal.signal(signal.SIGTERM, terminate)
    try:
        run(args.seeds, args.timeout)
    except (CheckFailed, subprocess.TimeoutExpired) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
