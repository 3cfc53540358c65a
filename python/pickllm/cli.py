"""The ``pickllm`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pickllm import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pickllm",
        description="Route LLM queries to the best model per context, learned online.",
    )
    parser.add_argument("--version", action="version", version=f"pickllm {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
    return 0
