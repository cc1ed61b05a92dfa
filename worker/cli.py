"""The ``escrutinio`` command line: one subcommand per job, each defined in worker.commands.*.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds its
subcommands and sets ``func(args) -> int`` on them. Any ``EscrutinioError`` (raise
``pipeline.errors.BadInput`` for bad arguments) becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pipeline.errors import EscrutinioError

COMMAND_MODULES = [
    "worker.commands.database",
    "worker.commands.model",
    "worker.commands.forms",
    "worker.commands.synth",
    "worker.commands.jobs",
    "worker.commands.demo",
    "worker.commands.read",
    "worker.commands.reports",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="escrutinio",
        description="Read handwritten vote counts on election telegrams and check them "
        "against the typed results.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EscrutinioError as exc:
        print(f"escrutinio: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("escrutinio: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
