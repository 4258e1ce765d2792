"""`--threads` for every command that computes, and the line that says how many threads it runs with."""

import sys

from shared.threads import ThreadChoice, use_threads

HELP = ("CPU threads for torch (default, or 0: the allowed cores that no other work keeps busy; "
        "ZOO_NUM_THREADS and OMP_NUM_THREADS also set it)")


def add_argument(parser, **kwargs) -> None:
    parser.add_argument("--threads", type=int, default=None, metavar="N", help=HELP, **kwargs)


def start_threads(command: str, requested: int | None) -> ThreadChoice:
    """Choose and apply this process's thread count and say it on stderr, the command's first line; a long
    job says it there again whenever it changes."""

    def say(message: str) -> None:
        print(f"zoo {command}: {message}", file=sys.stderr, flush=True)

    choice = use_threads(requested, log=say)
    say(str(choice) if choice.explicit else f"{choice}; --threads N to choose")
    return choice
