"""`zoo list` and `zoo info`."""

import json

from zoo import registry


def _human(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def run_list(args) -> int:
    names = registry.list_models(args.pattern, task=args.task, pretrained=args.pretrained)
    rows = [("name", "task", "params", "weights")]
    for name in names:
        entry = registry.get_entry(name)
        if entry.weights is None:
            weights = "-"
        else:
            weights = "available" if entry.weights.available() else "not installed"
        rows.append((name, entry.task, _human(entry.num_params()), weights))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if not names:
        print("(no models match)")
    return 0


def run_info(args) -> int:
    info = registry.model_info(args.name)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['name']}  ({info['family']}, {info['task']}, {info['architecture']})")
    print(f"parameters: {info['parameters']:,}")
    if info["aliases"]:
        print(f"aliases: {', '.join(info['aliases'])}")
    print("config:")
    for key, value in info["config"].items():
        print(f"  {key}: {value}")
    if info["weights"] is None:
        print("weights: none published in zoo (random init; train it or load a save_pretrained() folder)")
    else:
        print("weights, looked up in order (after an explicit path):")
        for source in info["weights"]["sources"]:
            print(f"  - {source}")
        print(f"  found: {info['weights']['available'] or 'nowhere on this machine'}")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'whisper*'")
    p.add_argument("--task", help="only models for this task")
    p.add_argument("--pretrained", action="store_true", help="only models whose weights are on this machine")
    p.set_defaults(func=run_list)

    p = subparsers.add_parser("info", help="config, size and weight sources of a model")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=run_info)
