"""Train the original Transformer to spell out numbers: "407" -> "four hundred seven".

A small `transformer` config learns the task from scratch in a couple of minutes on a CPU, then translates
held-out numbers it never saw with generate(). Run:

    python examples/translate_numbers.py --seconds 150
"""

import argparse
import json
import random
import time

import torch
from torch.nn import functional as F

import zoo
from shared.generation import BeamSearch, Greedy

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SPECIALS = ["<pad>", "<bos>", "<eos>"]  # ids 0, 1, 2 as in Seq2SeqConfig's defaults


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
    out = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


def split_numbers(limit: int, held_out: int, seed: int) -> tuple[list[int], list[int]]:
    numbers = list(range(limit))
    random.Random(seed).shuffle(numbers)
    return numbers[held_out:], numbers[:held_out]


def evaluate(model, vocab: Vocab, numbers: list[int], beams: int = 1) -> float:
    """Exact-match accuracy of generated words on `numbers`."""
    model.eval()
    correct = 0
    selector = Greedy() if beams == 1 else BeamSearch(num_beams=beams)
    for start in range(0, len(numbers), 256):
        chunk = numbers[start:start + 256]
        src = batch_tensor([vocab.encode_source(n) for n in chunk])
        out = model.generate(src, max_new_tokens=12, selector=selector)
        for n, row in zip(chunk, out.tokens[:, 1:].tolist()):
            correct += vocab.decode(row) == number_to_words(n)
    return correct / len(numbers)


def train(seconds: float = 150, limit: int = 100_000, held_out: int = 2000, seed: int = 0,
          batch_size: int = 128, lr: float = 1e-3, max_steps: int | None = None, log=print):
    """Train a small Transformer until the time budget or max_steps runs out; returns (model, vocab, test)."""
    torch.manual_seed(seed)
    vocab = Vocab()
    train_numbers, test_numbers = split_numbers(limit, held_out, seed)
    model = zoo.create_model("transformer_test", vocab_size=len(vocab.itos), dim=128, n_encoder_layers=3,
                             n_decoder_layers=3, n_heads=4, mlp_hidden=512, dropout=0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = 200
    rng = random.Random(seed)
    start, step = time.monotonic(), 0
    while time.monotonic() - start < seconds and (max_steps is None or step < max_steps):
        model.train()
        numbers = rng.sample(train_numbers, batch_size)
        src = batch_tensor([vocab.encode_source(n) for n in numbers])
        tgt = batch_tensor([vocab.encode_target(n) for n in numbers])
        logits = model(src, tgt[:, :-1])  # teacher forcing: (B, T-1, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt[:, 1:].reshape(-1), ignore_index=0,
                               label_smoothing=0.05)
        for group in optimizer.param_groups:  # linear warm-up, then constant
            group["lr"] = lr * min(1.0, (step + 1) / warmup)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if step % 200 == 0:
            log(f"step {step:5d}  loss {loss.item():.3f}  {time.monotonic() - start:5.0f}s")
    return model, vocab, test_numbers, step


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150, help="training time budget")
    parser.add_argument("--steps", type=int, default=None, help="stop after this many steps (reproducible runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=6, help="held-out translations to print")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line at the end")
    args = parser.parse_args(argv)
    started = time.monotonic()
    model, vocab, test_numbers, steps = train(seconds=args.seconds, seed=args.seed, max_steps=args.steps)
    for n in test_numbers[: args.samples]:
        out = model.generate(batch_tensor([vocab.encode_source(n)]), max_new_tokens=12)
        print(f"{n:>6} -> {vocab.decode(out.tokens[0, 1:].tolist())}")
    accuracy = evaluate(model, vocab, test_numbers)
    result = {"steps": steps, "held_out": len(test_numbers), "exact_match": accuracy,
              "seconds": round(time.monotonic() - started, 1)}
    print(f"exact match on {len(test_numbers)} held-out numbers: {accuracy:.1%} "
          f"({steps} steps, {result['seconds']}s)")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
