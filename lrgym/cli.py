"""The ``lrgym`` command line: one entry point, one module per subcommand.

Each module in ``lrgym.commands`` has ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int`` and keeps its heavy imports inside ``run`` so that every
command starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from lrgym.trainee.data import DataNotFoundError

COMMANDS = ("list", "episode", "train", "evaluate", "tune", "transfer", "experiment", "aggregate")
EPILOG = """\
names and paths:
  A task, family or agent is a name or the path of a TOML file (./my-task.toml,
  --agents ./my-agent.toml,constant). Names are the files in envs/ and agents/ of
  the lrgym folder, or of $LRGYM_HOME when it is set (a folder with envs/, agents/
  and checkpoints/ of its own; `lrgym list` shows which). `lrgym list --path DIR`
  lists a folder of spec files. A task's dataset and model are registered names or
  plug-ins, module:function or file.py:function (Python code that runs: your own).

environment:
  LRGYM_HOME  the folder of envs/, agents/ and checkpoints/ (default: the lrgym folder)
  LRGYM_DATA  a folder searched for dataset files (like --data-dir)
"""


class Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported as one line and exit 2, like every other user mistake."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command_modules() -> dict[str, object]:
    modules = {}
    for name in COMMANDS:
        try:
            modules[name] = importlib.import_module(f"lrgym.commands.{name}_command")
        except ModuleNotFoundError as error:
            if error.name != f"lrgym.commands.{name}_command":
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="lrgym",
        description="Meta-train a learning-rate controller with RL; evaluate and transfer it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in _command_modules().items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def _ray_join_abandoned() -> bool:
    ray_tasks = sys.modules.get("lrgym.runners.ray_tasks")  # loaded only if Ray was asked for
    return bool(getattr(ray_tasks, "ABANDONED_CONNECT", False))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A warning is one line too (Python's format adds the source line that raised it).
    python_format = warnings.formatwarning
    warnings.formatwarning = lambda message, *_, **__: f"lrgym {args.command}: warning: {message}\n"
    try:
        return int(args.handler(args) or 0)
    except (ValueError, DataNotFoundError, FileNotFoundError, ConnectionError) as error:
        # ConnectionError: a Ray cluster that cannot be joined (lrgym.runners.ray_tasks.connect)
        print(f"lrgym {args.command}: error: {error}", file=sys.stderr)
        if argv is None and isinstance(error, ConnectionError) and _ray_join_abandoned():
            # Ray's abandoned connection thread would abort the normal shutdown (status -6):
            # end this process now, with the status the error deserves.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)
        return 2
    except KeyboardInterrupt:
        print(f"lrgym {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = python_format


if __name__ == "__main__":
    sys.exit(main())
