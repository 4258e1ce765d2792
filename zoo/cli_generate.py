"""`zoo generate`: text generation with GPT-2 or T5, streaming the text as it is produced.

    zoo generate --model gpt2 --checkpoint ./gpt2 --prompt "The Transformer" --max-new-tokens 40 --top-p 0.9
    zoo generate --model t5_small --checkpoint ./t5-small --prompt "translate English to German: Hello" \
        --num-beams 4
"""

import json
import sys
from pathlib import Path

import torch

from shared.errors import ConfigError, InputError
from shared.generation import BeamSearch, Greedy, Sample
from zoo import cli_threads, registry

TEXT_TASKS = ("text-generation", "text2text-generation")  # the tasks whose models turn a prompt into text


def load_generator(name: str, checkpoint: str | None = None, tokenizer: str | None = None,
                   device: str | None = None, precision: str = "float32"):
    """(model, tokenizer) for a registered text-generation model.

    checkpoint: a folder from save_pretrained() or an HF-format folder; without it, the first weight source
    that has the model's weights. The tokenizer.json comes from `tokenizer` or else that same folder.
    """
    from text.generate import reduce_precision
    from text.tokenizer import Tokenizer

    entry = registry.get_entry(name)
    if entry.task not in TEXT_TASKS:  # the Vaswani transformer also decodes, but has no tokenizer to read
        raise ConfigError(f"{entry.name} is a {entry.task} model, not a text generator; "
                          f"try one of {', '.join(registry.list_models(task='text-generation'))}")
    if checkpoint is not None and _is_zoo_folder(Path(checkpoint)):
        path = Path(checkpoint)
        model = entry.model_class.from_pretrained(path)
    else:
        if entry.weights is None:
            raise ConfigError(f"{entry.name} has no published weights; pass --checkpoint with a folder "
                              "written by save_pretrained() or an HF-format folder")
        path = entry.weights.resolve(entry.name, checkpoint)
        model = registry.create_model(entry.name, pretrained=path)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = reduce_precision(model.to(device).eval(), precision)
    tokenizer_path = Path(tokenizer) if tokenizer else (path if path.is_dir() else path.parent)
    return model, Tokenizer.from_file(tokenizer_path)


def _is_zoo_folder(path: Path) -> bool:
    """A save_pretrained() folder names its architecture in config.json; an HF folder does not."""
    try:
        return "architecture" in json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False


def make_selector(args) -> Greedy | Sample | BeamSearch:
    """Beam search with --num-beams > 1; sampling when a temperature > 0, --top-k or --top-p is given;
    otherwise greedy."""
    if args.num_beams < 1:
        raise InputError(f"--num-beams must be at least 1, got {args.num_beams}")
    sampling = (args.temperature or 0) > 0 or args.top_k is not None or args.top_p is not None
    if args.num_beams > 1:
        if sampling:
            raise InputError("beam search does not sample: drop --temperature/--top-k/--top-p or --num-beams")
        return BeamSearch(args.num_beams, args.length_penalty, args.early_stopping)
    if not sampling:
        return Greedy()
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise InputError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.top_k is not None and args.top_k < 1:
        raise InputError(f"--top-k must be at least 1, got {args.top_k}")
    return Sample(args.temperature or 1.0, args.top_k, args.top_p, args.seed)


def run_generate(args) -> int:
    from text.generate import generate_text

    selector = make_selector(args)
    if args.seed is not None:
        torch.manual_seed(args.seed)
    model, tokenizer = load_generator(args.model, args.checkpoint, args.tokenizer, args.device, args.dtype)
    threads = [cli_threads.start_threads("generate", args.threads, say=False)]

    def write(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    def on_text(piece: str) -> None:
        if threads:  # said once the prompt passed its checks, so a rejected prompt stays a one-line error
            cli_threads.say_threads("generate", threads.pop())
        write(piece)

    if args.echo:
        write(args.prompt)
    result = generate_text(model, tokenizer, args.prompt, args.max_new_tokens, selector=selector,
                           stop=args.stop or (), on_text=on_text)
    on_text("\n")
    if args.verbose:
        print(f"[{len(result.token_ids)} tokens, finished by {result.finish_reason}]", file=sys.stderr)
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate text with GPT-2 or T5, streaming it as it comes")
    p.add_argument("--model", required=True, help="a text-generation model, e.g. gpt2 or t5_small")
    p.add_argument("--checkpoint", help="save_pretrained() or HF-format folder, with its tokenizer.json")
    p.add_argument("--tokenizer", help="tokenizer.json (or its folder) if not in the checkpoint folder")
    p.add_argument("--prompt", required=True, help="text to continue (GPT-2) or to transform (T5)")
    p.add_argument("--max-new-tokens", type=int, default=50)
    p.add_argument("--temperature", type=float, default=None, help="sample at this temperature (0: greedy)")
    p.add_argument("--top-k", type=int, default=None, help="sample from the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="sample from the smallest set with this mass")
    p.add_argument("--seed", type=int, default=None, help="makes sampling reproducible")
    p.add_argument("--num-beams", type=int, default=1, help="beam search with this many beams")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="beam score = log-probability / length ** penalty")
    p.add_argument("--early-stopping", action="store_true", help="end beam search once enough beams finished")
    p.add_argument("--stop", action="append", metavar="STR", help="end the text before this (repeatable)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "int8"), default="float32",
                   help="weights precision: int8 is the fast CPU mode, bfloat16 the GPU one")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--echo", action="store_true", help="print the prompt before the generated text")
    p.add_argument("--verbose", action="store_true", help="report token count and why generation ended")
    cli_threads.add_argument(p)
    p.set_defaults(func=run_generate)
