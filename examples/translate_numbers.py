"""Teach the original Transformer to spell out numbers: "407" -> "four hundred seven".

A small `transformer` config learns the task from scratch on one CPU thread, then translates 2,000 held-out
numbers it never saw with generate(). Training runs a fixed number of steps with fixed seeds, so a run gives the
same model on a fast or a busy machine. The weights of one such run ship in examples/numbers/. Run:

    python examples/translate_numbers.py --checkpoint examples/numbers   # translate with the shipped weights
    python examples/translate_numbers.py --steps 1000 --save out/numbers # train the same recipe yourself
"""

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

import zoo
from shared.generation import BeamSearch, Greedy
from shared.threads import apply_threads

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SPECIALS = ["<pad>", "<bos>", "<eos>"]  # ids 0, 1, 2 as in Seq2SeqConfig's defaults
LIMIT, HELD_OUT = 100_000, 2000  # numbers 0..99,999; 2,000 of them never seen in training
SPLIT_SEED = 0  # one fixed held-out set, whatever seed a run trains with, so checkpoints compare on it


def number_to_words(n: int) -> str:
    """English words for 0 <= n < 1,000,000, without "and" ("407" -> "four hundred seven")."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    rest = n % 1000
    return number_to_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_to_words(rest))


class Vocab:
    """One shared vocabulary for source digits and target words (the paper shares its embeddings too)."""

    def __init__(self):
        words = sorted({w for n in range(1000) for w in number_to_words(n).split()} | {"thousand"})
        self.itos = SPECIALS + list("0123456789") + words
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    def encode_source(self, n: int) -> list[int]:
        return [self.stoi[c] for c in str(n)] + [2]

    def encode_target(self, n: int) -> list[int]:
        return [1] + [self.stoi[w] for w in number_to_words(n).split()] + [2]

    def decode(self, ids) -> str:
        words = []
        for i in ids:
            if i == 2:
                break
            if i > 2:
                words.append(self.itos[i])
        return " ".join(words)


def batch_tensor(rows: list[list[int]]) -> torch.Tensor:
    """Right-pad token lists with 0 (<pad>) into one (B, T) tensor."""
    out = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


def split_numbers(limit: int, held_out: int, seed: int) -> tuple[list[int], list[int]]:
    """Shuffle 0..limit-1 with `seed`; the first `held_out` are the test numbers, the rest train."""
    numbers = list(range(limit))
    random.Random(seed).shuffle(numbers)
    return numbers[held_out:], numbers[:held_out]


def translate(model, vocab: Vocab, numbers: list[int], beams: int = 1) -> list[str]:
    """Spell out `numbers` with generate(), 256 at a time."""
    model.eval()
    selector = Greedy() if beams == 1 else BeamSearch(num_beams=beams)
    words = []
    for start in range(0, len(numbers), 256):
        src = batch_tensor([vocab.encode_source(n) for n in numbers[start:start + 256]])
        out = model.generate(src, max_new_tokens=12, selector=selector)
        words += [vocab.decode(row) for row in out.tokens[:, 1:].tolist()]  # drop the <bos> prompt
    return words


def evaluate(model, vocab: Vocab, numbers: list[int], beams: int = 1) -> float:
    """Exact-match accuracy of generated words on `numbers`."""
    guesses = translate(model, vocab, numbers, beams)
    return sum(g == number_to_words(n) for g, n in zip(guesses, numbers)) / len(numbers)


def build_model(vocab: Vocab):
    """A 1M-parameter original Transformer (3 + 3 post-norm layers, width 128): about 4 MB of float32."""
    return zoo.create_model("transformer_test", vocab_size=len(vocab.itos), dim=128, n_encoder_layers=3,
                            n_decoder_layers=3, n_heads=4, mlp_hidden=256, dropout=0.0)


def train(steps: int, seed: int = 0, batch_size: int = 128, lr: float = 1e-3, log=print):
    """Train for exactly `steps` batches; returns (model, vocab, held-out numbers)."""
    torch.manual_seed(seed)
    vocab = Vocab()
    train_numbers, test_numbers = split_numbers(LIMIT, HELD_OUT, SPLIT_SEED)
    model = build_model(vocab)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = max(1, steps // 10)
    rng = random.Random(seed)
    started = time.monotonic()
    for step in range(steps):
        model.train()
        numbers = rng.sample(train_numbers, batch_size)
        src = batch_tensor([vocab.encode_source(n) for n in numbers])
        tgt = batch_tensor([vocab.encode_target(n) for n in numbers])
        logits = model(src, tgt[:, :-1])  # teacher forcing: (B, T-1, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt[:, 1:].reshape(-1), ignore_index=0,
                               label_smoothing=0.05)
        # Linear warm-up over the first tenth, then a cosine decay to zero at the last step.
        progress = max(0.0, (step - warmup) / max(1, steps - warmup))
        scale = (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = lr * scale
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if (step + 1) % 100 == 0 or step + 1 == steps:
            log(f"step {step + 1:5d}  loss {loss.item():.3f}  {time.monotonic() - started:5.0f}s")
    return model, vocab, test_numbers


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps (batches of 128 numbers)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batch order")
    parser.add_argument("--checkpoint", help="translate with this save_pretrained folder instead of training")
    parser.add_argument("--save", help="write the trained model here (save_pretrained) with training.json")
    parser.add_argument("--beams", type=int, default=1, help="beam width (1: greedy)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (more barely help a model this small, and one gives the same run anywhere)")
    parser.add_argument("--samples", type=int, default=6, help="held-out translations to print")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line at the end")
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    started = time.monotonic()
    if args.checkpoint:
        model, vocab = zoo.load_pretrained(args.checkpoint), Vocab()
        test_numbers = split_numbers(LIMIT, HELD_OUT, SPLIT_SEED)[1]
        result = {"checkpoint": args.checkpoint}
    else:
        model, vocab, test_numbers = train(args.steps, seed=args.seed)
        result = {"steps": args.steps, "seed": args.seed}
        if args.save:  # saved in float16 (half the file): score the weights as they will be stored
            model.half().float()
    samples = test_numbers[: args.samples]
    for n, words in zip(samples, translate(model, vocab, samples, args.beams)):
        print(f"{n:>6} -> {words}")
    accuracy = evaluate(model, vocab, test_numbers, args.beams)
    result.update(held_out=len(test_numbers), exact_match=accuracy, seconds=round(time.monotonic() - started, 1))
    made_by = args.checkpoint or f"{args.steps} training steps"
    print(f"exact match on {len(test_numbers)} held-out numbers: {accuracy:.1%} ({made_by}, {result['seconds']}s)")
    if args.save:
        model.half().save_pretrained(args.save)  # loading casts them back to the model's float32
        given = sys.argv[1:] if argv is None else argv
        record = {"command": " ".join(["python examples/translate_numbers.py", *given]), **result}
        (Path(args.save) / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
