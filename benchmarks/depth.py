"""How deep one forward pass runs in zoo's own code: the longest chain of nested calls into project files.

    python -m benchmarks.depth            # vit_test and whisper_test, plain and after prepare_for_inference
    python -m benchmarks.depth gpt2_test  # any registered model with a test-sized input below

A frame counts when its file lies in the repository and not in a virtual environment; torch's own frames
(nn.Module.__call__ and the like) are not counted, so the number is the depth a reader follows through zoo's
sources. The measured pass is the second one, so one-off work of a first call (a prepared model fusing its
weights) is left out. Also prints how many distinct project functions and files the pass runs through.
"""

import argparse
import sys
from pathlib import Path

import torch

import zoo
from shared.inference import prepare_for_inference

ROOT = Path(__file__).resolve().parent.parent


def own(filename: str) -> bool:
    path = Path(filename)
    return path.is_relative_to(ROOT) and ".venv" not in path.parts


def example_inputs(name: str, model: torch.nn.Module) -> tuple:
    """One small input batch for the model's forward."""
    torch.manual_seed(0)
    config = model.config
    if name.startswith("whisper"):
        mel = torch.randn(1, config.n_mels, 2 * config.n_audio_ctx)
        return mel, torch.tensor([[1, 2, 3]])
    if name.startswith("vit"):
        return (torch.randn(1, config.in_chans, config.img_size, config.img_size),)
    if name.startswith(("t5", "transformer")):
        return torch.tensor([[5, 6, 7]]), torch.tensor([[0, 4]])
    if name.startswith("caption"):
        size = model.image_size
        return torch.randn(1, 3, size, size), torch.tensor([[1, 4]])
    return (torch.tensor([[5, 6, 7]]),)


def measure(model: torch.nn.Module, inputs: tuple) -> tuple[int, list[str], int, int]:
    """(deepest chain, that chain's frames, own functions run, own files run)."""
    depth, deepest, stack = 0, [], []
    functions, files = set(), set()

    def profile(frame, event, arg):
        nonlocal depth, deepest
        if event not in ("call", "return") or not own(frame.f_code.co_filename):
            return
        if event == "return":
            if stack:
                stack.pop()
            return
        code = frame.f_code
        stack.append(code.co_qualname)
        functions.add((code.co_filename, code.co_qualname))
        files.add(code.co_filename)
        if len(stack) > depth:
            depth, deepest = len(stack), list(stack)

    with torch.no_grad():
        model(*inputs)  # the first call may do one-off work
        sys.setprofile(profile)
        try:
            model(*inputs)
        finally:
            sys.setprofile(None)
    return depth, deepest, len(functions), len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["vit_test", "whisper_test"])
    args = parser.parse_args()
    for name in args.models:
        model = zoo.create_model(name).eval()
        inputs = example_inputs(name, model)
        for label in ("plain", "prepared"):
            if label == "prepared":
                prepare_for_inference(model)
            depth, chain, n_functions, n_files = measure(model, inputs)
            print(f"{name:14} {label:9} depth {depth:2}  functions {n_functions:3}  files {n_files:2}")
            print(f"{'':25}{' -> '.join(chain)}")


if __name__ == "__main__":
    main()
