"""GPT-2 greedy generation: zoo against transformers on the same weights, in one process.

A gpt2-size model (124M parameters) with random weights from transformers' own initialisation (no real weights
ship offline) is converted to zoo. Both generate `new_tokens` tokens greedily from the same prompt at batch 1,
in float32. zoo also runs its reduced-precision weights (int8 on CPU, bfloat16 on GPU) two ways: plain, and as
the draft that the float32 model verifies several tokens at a time (draft_and_verify), which by construction
gives float32's greedy output. Prints the device, threads, tokens/s, the ratios and whether outputs match.

    python benchmarks/text_generation.py [--new-tokens 128] [--prompt-len 32] [--repeats 3] [--device cpu]
"""

import argparse
import time

import torch

from shared.generation import Greedy, generate
from text.convert_gpt2 import config_from_hf, convert_gpt2
from text.generate import draft_and_verify, reduce_precision
from text.gpt2 import GPT2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device: torch.device) -> tuple[float, torch.Tensor]:
    _sync(device)
    start = time.perf_counter()
    tokens = fn()
    _sync(device)
    return time.perf_counter() - start, tokens


def run(new_tokens: int = 128, prompt_len: int = 32, repeats: int = 3, device: str | None = None,
        seed: int = 0, draft_tokens: int = 4) -> dict:
    """Time every contender `repeats` times (interleaved, best run kept) and return tokens/s and ratios."""
    import transformers

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config()).eval().to(device)
    hf.generation_config.eos_token_id = None  # random weights: never stop early, always time new_tokens steps
    hf.generation_config.pad_token_id = 0
    ours = GPT2(config_from_hf(hf.config.to_dict())).eval()
    ours.load_state_dict(convert_gpt2({k: v.cpu() for k, v in hf.state_dict().items()}, ours.config))
    ours = ours.to(device)
    low = "int8" if device.type == "cpu" else "bfloat16"
    reduced = reduce_precision(ours, low)
    prompt = torch.randint(0, hf.config.vocab_size, (1, prompt_len),
                           generator=torch.Generator().manual_seed(seed)).to(device)

    def hf_generate(n=new_tokens):
        with torch.inference_mode():
            return hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                               min_new_tokens=0, do_sample=False, num_beams=1)

    def zoo_generate(model):
        return lambda n=new_tokens: generate(model, prompt, n, selector=Greedy(), stop_tokens=[]).tokens

    def drafted(n=new_tokens):
        return draft_and_verify(ours, reduced, prompt, n, draft_tokens=draft_tokens).tokens

    contenders = {"transformers fp32": hf_generate, "zoo fp32": zoo_generate(ours),
                  f"zoo {low}": zoo_generate(reduced), f"zoo {low} draft+verify": drafted}
    best = {name: float("inf") for name in contenders}
    outputs = {}
    for fn in contenders.values():  # warm-up: first-call allocations, lazy inits, kernel selection
        fn(8)
    for _ in range(repeats):
        for name, fn in contenders.items():
            seconds, outputs[name] = _time(fn, device)
            best[name] = min(best[name], seconds)
    expected = outputs["transformers fp32"]
    same = {name: torch.equal(out.cpu(), expected.cpu()) for name, out in outputs.items()}
    tokens_per_s = {name: new_tokens / seconds for name, seconds in best.items()}
    base = tokens_per_s["transformers fp32"]
    result = {"device": str(device), "threads": torch.get_num_threads(), "new_tokens": new_tokens,
              "prompt_len": prompt_len, "tokens_per_s": tokens_per_s,
              "ratio_vs_transformers": {name: v / base for name, v in tokens_per_s.items()},
              "same_tokens_as_transformers": same}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {device} ({name}), threads: {result['threads']}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print(f"GPT-2 124M, random weights, greedy, batch 1, prompt {prompt_len} -> {new_tokens} new tokens, "
          f"best of {repeats}")
    for name in contenders:
        ratio = result["ratio_vs_transformers"][name]
        print(f"  {name:<26} {tokens_per_s[name]:7.1f} tokens/s  x{ratio:.2f}  "
              f"same tokens as transformers fp32: {same[name]}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--draft-tokens", type=int, default=4, help="tokens drafted per verification pass")
    args = parser.parse_args()
    run(args.new_tokens, args.prompt_len, args.repeats, args.device, draft_tokens=args.draft_tokens)


if __name__ == "__main__":
    main()
