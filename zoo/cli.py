"""The `zoo` command line. Each subcommand lives in its own module with add_parser(subparsers)."""

import argparse
import sys

from shared.errors import ZooError
from zoo import (
    cli_caption,
    cli_compose,
    cli_embed,
    cli_generate,
    cli_imagine,
    cli_models,
    cli_serve,
    cli_train,
    cli_transcribe,
)

COMMAND_MODULES = [cli_models, cli_embed, cli_train, cli_transcribe, cli_generate, cli_caption, cli_imagine,
                   cli_compose, cli_serve]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="A multimodal Transformer model zoo.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except ZooError as err:
        if args.debug:
            raise
        print(f"zoo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"zoo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
