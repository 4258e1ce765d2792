"""`--threads` for every command that computes, and the line that says how many threads it runs with."""

import sys

from shared.threads import ThreadChoice, use_threads

HELP = ("CPU threads for torch (default, or 0: the allowed cores that no other work keeps busy; "
        "ZOO_NUM_THREADS and OMP_NUM_THREADS also set it)")


def add_argument(parser, **kwargs) -> None:
    parser.add_argument("--threads", type=int, default=None, metavar="N", help=HELP, **kwargs)


def start_threads(command: str, requested: int | None, say: bool = True) -> ThreadChoice:
    """Choose and apply this process's thread count and say it on stderr, the command's first line (or, with
    say=False, when the caller calls say_threads); a long job says it there again whenever it changes."""
    choice = use_threads(requested, log=lambda message: _say(command, message))
    if say:
        say_threads(command, choice)
    return choice


def say_threads(command: str, choice: ThreadChoice) -> None:
    _say(command, str(choice) if choice.explicit else f"{choice}; --threads N to choose")


def _say(command: str, message: str) -> None:
    print(f"zoo {command}: {message}", file=sys.stderr, flush=True)
