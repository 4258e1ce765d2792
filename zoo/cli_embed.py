"""`zoo embed`: sentence embeddings and their cosine similarities from the command line.

    zoo embed "A man is eating food." "A man is eating a piece of bread." --format table
"""

import json
import sys

import torch

from shared.errors import InputError
from zoo import cli_threads, registry
from zoo.embedding import load_encoder


def similarity(vectors: torch.Tensor) -> torch.Tensor:
    """Cosine similarities (N, N) of unit vectors (N, D)."""
    return vectors @ vectors.T


def _format_table(name: str, sentences: list[str], vectors: torch.Tensor, shown: int, digits: int) -> str:
    lines = [f"{name}: {vectors.shape[1]}-dimensional unit vectors"]
    width = min(max(len(s) for s in sentences), 48)
    for i, (sentence, vector) in enumerate(zip(sentences, vectors.tolist()), start=1):
        text = sentence if len(sentence) <= width else sentence[:width - 1] + "…"
        head = ", ".join(f"{v:+.{digits}f}" for v in vector[:shown])
        more = f", … ({len(vector)} values)" if len(vector) > shown else ""
        lines.append(f"{i:>3}  {text:<{width}}  [{head}{more}]")
    if len(sentences) > 1:
        sims = similarity(vectors).tolist()
        header = "".join(f"{j:>{digits + 4}}" for j in range(1, len(sims) + 1))
        lines += ["", "cosine similarity", "     " + header]
        for i, row in enumerate(sims, start=1):
            lines.append(f"{i:>3}  " + "".join(f"{v:>{digits + 4}.{digits}f}" for v in row))
    return "\n".join(lines)


def run_embed(args) -> int:
    sentences = list(args.sentences)
    if sentences == ["-"]:
        sentences = [line.strip() for line in sys.stdin if line.strip()]
    if not sentences:
        raise InputError("no sentences given; pass them as arguments, or '-' to read one per line from stdin")
    encoder = load_encoder(args.model, args.checkpoint, args.device)
    cli_threads.start_threads("embed", args.threads)
    vectors = encoder.encode(sentences, batch_size=args.batch_size)  # (N, D)
    name = registry.get_entry(args.model).name
    if args.format == "json":
        payload = {"model": name, "dim": vectors.shape[1],
                   "embeddings": [{"sentence": s, "vector": v} for s, v in zip(sentences, vectors.tolist())]}
        if len(sentences) > 1:
            payload["similarity"] = similarity(vectors).tolist()
        print(json.dumps(payload))
    else:
        print(_format_table(name, sentences, vectors, args.show, args.digits))
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("embed", help="sentence embeddings and their cosine similarities")
    p.add_argument("sentences", nargs="+", metavar="SENTENCE", help="texts to embed ('-' reads stdin)")
    p.add_argument("--model", default="minilm_l6", help="BERT-family model with weights (default: minilm_l6)")
    p.add_argument("--checkpoint", type=str, default=None,
                   help="HF folder with config.json, model.safetensors and tokenizer.json")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per forward pass")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--show", type=int, default=6, help="vector values shown per sentence in the table")
    p.add_argument("--digits", type=int, default=4, help="decimals in the table")
    cli_threads.add_argument(p)
    p.set_defaults(func=run_embed)

