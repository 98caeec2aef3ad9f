"""`modaltune <command> ...`: argument parsing only; one sub-command per workflow rule.

Each library package that has commands keeps them in ``modaltune/<package>/cli.py`` with a
``register(subparsers)`` function. Those modules import nothing heavy at module level, so that
`modaltune tile` never pays for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import pkgutil
import sys

import modaltune


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modaltune", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"modaltune {modaltune.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for package in sorted(m.name for m in pkgutil.iter_modules(modaltune.__path__) if m.ispkg):
        name = f"modaltune.{package}.cli"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
