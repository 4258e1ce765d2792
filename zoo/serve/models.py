"""The models a server holds, loaded once at start-up, and the functions the compute thread runs on them.

Each family's `run_*` takes a list of queued payloads and returns one result each, in order (see
zoo.serve.compute.Lane). They run only on the compute thread.
"""

from __future__ import annotations

import functools
import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import ConfigError
from zoo.serve.config import ServeConfig
from zoo.shipped import SHIPPED_CAPTIONER


@dataclass
class Served:
    """One served model: its public id, its task (the lane it runs on) and what was loaded for it."""

    id: str
    task: str
    handle: object
    names: set = field(default_factory=set)  # other names a request may use for it (registry name, aliases)


def _whisper_id(entry) -> str:
    """The short alias users know from openai-whisper (tiny.en), else the registry name."""
    from zoo.models import ALIASES

    short = sorted((a for a, name in ALIASES.items() if name == entry.name and "/" not in a), key=len)
    return short[0] if short else entry.name


def _servable() -> list[str]:
    """Registry models with weights on this machine that a family of the server runs."""
    from zoo import registry

    entries = [registry.get_entry(n) for n in registry.list_models(pretrained=True)]
    return [e.name for e in entries if e.family == "whisper" or e.task == "sentence-embedding"]


def _public_id(name: str) -> str:
    from zoo import registry

    entry = registry.get_entry(name)
    return _whisper_id(entry) if entry.family == "whisper" else entry.name


def _registry_models(wanted: list[str] | None, device: str | None) -> list[Served]:
    from zoo import registry
    from zoo.embedding import load_encoder
    from zoo.models import ALIASES
    from zoo.transcribe import load_model, transcribe

    served = []
    for name in _servable():
        if wanted is not None and not any(_matches(w, name) for w in wanted):
            continue
        aliases = {a for a, target in ALIASES.items() if target == name} | {name}
        if registry.get_entry(name).family == "whisper":
            load_model(name, device=device)  # zoo.transcribe keeps it loaded for the requests
            handle = functools.partial(transcribe, model=name, device=device)
            served.append(Served(_public_id(name), "transcription", handle, aliases))
        else:
            served.append(Served(name, "embedding", load_encoder(name, None, device), aliases))
    return served


def _matches(wanted: str, name: str) -> bool:
    from zoo import registry

    try:
        return registry.get_entry(wanted).name == name
    except ConfigError:
        return False


def _check_wanted(config: ServeConfig) -> None:
    """Every --models entry must name something this machine can serve (before anything loads)."""
    if config.models is None:
        return
    servable = _servable()
    folders = [Path(f).resolve().name for f in (config.generator, config.classifier, config.captioner) if f]
    if SHIPPED_CAPTIONER.is_dir():
        folders.append(SHIPPED_CAPTIONER.name)
    unknown = [w for w in config.models if w not in folders and not any(_matches(w, n) for n in servable)]
    if unknown:
        names = [_public_id(n) for n in servable] + folders
        raise ConfigError(f"--models {', '.join(unknown)}: nothing by that name to serve here; with weights on "
                          f"this machine: {', '.join(names)}")


def _generator(folder: str, device: str | None):
    """(model, tokenizer) from an HF GPT-2 folder or a save_pretrained() folder of any text generator."""
    from zoo.cli_generate import load_generator

    path = Path(folder)
    try:
        architecture = json.loads((path / "config.json").read_text()).get("architecture")
    except (OSError, ValueError) as err:
        raise ConfigError(f"--generator {folder}: no readable config.json there ({err})") from None
    name = "t5_small" if architecture == "T5" else "gpt2"  # its class loads the folder, whatever its size
    return load_generator(name, str(path), device=device)


def load_models(config: ServeConfig) -> dict[str, Served]:
    """Load every model the config asks for; ids in the order /v1/models lists them."""
    from zoo.train.caption_inference import load_captioner
    from zoo.train.inference import load_classifier

    wanted = config.models
    _check_wanted(config)
    served = _registry_models(wanted, config.device)
    shipped = SHIPPED_CAPTIONER if SHIPPED_CAPTIONER.is_dir() and config.captioner is None else None
    if shipped is not None and (wanted is None or shipped.name in wanted):
        served.append(Served(shipped.name, "caption", load_captioner(shipped, device=config.device), {shipped.name}))
    given = [("completion", config.generator, lambda p: _generator(p, config.device)),
             ("caption", config.captioner, lambda p: load_captioner(p, device=config.device)),
             ("classification", config.classifier, lambda p: load_classifier(p, device=config.device))]
    for task, folder, load in given:  # a folder given by its flag is always served
        if folder is not None:
            model_id = Path(folder).resolve().name
            served.append(Served(model_id, task, load(folder), {model_id}))
    if not served:
        raise ConfigError("no model to serve: none of --models has weights on this machine; see `zoo list "
                          "--pretrained`")
    return {s.id: s for s in served}


# ---- the work itself, on the compute thread -------------------------------------------------------------

def run_transcriptions(payloads: list[tuple[Served, object, dict]]) -> list[dict]:
    """(model, 16 kHz samples, transcribe options) -> openai-whisper's result dicts, from zoo.transcribe
    itself, so a served transcript is the library's."""
    return [served.handle(samples, **options) for served, samples, options in payloads]


def run_embeddings(payloads: list[tuple[Served, list[str]]]) -> list[tuple[object, list[int]]]:
    """(model, sentences) -> ((N, D) unit vectors, tokens per sentence). Requests for one model are embedded
    in one call, so concurrent requests share forward passes."""
    results: list = [None] * len(payloads)
    for model_id in {served.id for served, _ in payloads}:
        mine = [i for i, (served, _) in enumerate(payloads) if served.id == model_id]
        encoder = payloads[mine[0]][0].handle
        sentences = [s for i in mine for s in payloads[i][1]]
        vectors = encoder.encode(sentences)  # (N, D), in the order given
        mask = encoder.tokenizer.encode_batch(sentences, max_length=encoder.max_length)["attention_mask"]
        counts = mask.sum(-1).tolist()  # tokens per sentence, special tokens included
        start = 0
        for i in mine:
            n = len(payloads[i][1])
            results[i] = (vectors[start:start + n], counts[start:start + n])
            start += n
    return results


@dataclass
class Completion:
    """One completion request: what generate_text needs, and `on_text` to stream pieces as they come."""

    prompt: str
    max_tokens: int
    selector: object
    stop: list[str]
    on_text: Callable[[str], None] | None = None
    abandoned: bool = False  # set when a streaming client has gone: on_text then stops the generation


def run_completions(payloads: list[tuple[Served, Completion]]) -> list:
    """(model, request) -> (TextGeneration, prompt tokens)."""
    from text.generate import generate_text

    results = []
    for served, job in payloads:
        model, tokenizer = served.handle
        out = generate_text(model, tokenizer, job.prompt, job.max_tokens, selector=job.selector, stop=job.stop,
                            on_text=job.on_text)
        results.append((out, len(tokenizer.encode(job.prompt))))
    return results


def attention_png(name: str, words: list[str], maps, image) -> bytes:
    """The PNG `zoo caption --attention-map` draws: the image, then each word's attention over it."""
    from zoo.cli_caption import plot_attention

    buffer = io.BytesIO()
    plot_attention(buffer, [(name, words, maps, image)])
    return buffer.getvalue()


def run_captions(payloads: list[tuple[Served, str, bool, str]]) -> list[tuple[str, bytes | None]]:
    """(model, image file, with attention, the image's name) -> (caption, PNG of the attention maps or None)."""
    from zoo.train.caption_inference import caption_files

    results = []
    for served, path, with_attention, name in payloads:
        [(_, result)] = caption_files(served.handle, [path], with_attention=with_attention)
        if isinstance(result, Exception):
            raise result
        caption, words, maps, image = result
        png = attention_png(name, words, maps, image) if maps is not None else None
        results.append((caption, png))
    return results


def run_classifications(payloads: list[tuple[Served, str, int]]) -> list[list[tuple[str, float]]]:
    """(model, image file, k) -> the k most likely (label, probability), best first."""
    from zoo.train.inference import classify_files

    results = []
    for served, path, k in payloads:
        [(_, result)] = classify_files(served.handle, [path], topk=k)
        if isinstance(result, Exception):
            raise result
        results.append(result)
    return results


RUNS = {"transcription": run_transcriptions, "embedding": run_embeddings, "completion": run_completions,
        "caption": run_captions, "classification": run_classifications}


def warm(served: dict[str, Served]) -> None:
    """Run every model once on a small input, so the first request does not pay for first-call set-up."""
    import numpy as np
    from PIL import Image

    from shared.generation import Greedy

    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "warm.png"
        Image.new("RGB", (48, 48), (128, 128, 128)).save(image)
        noise = np.random.default_rng(0).normal(0, 0.01, 16000).astype(np.float32)  # 1 s of faint noise
        inputs = {"transcription": lambda s: (s, noise, {"temperature": 0.0}),
                  "embedding": lambda s: (s, ["warm up"]),
                  "completion": lambda s: (s, Completion("warm", 1, Greedy(), [])),
                  "caption": lambda s: (s, str(image), True, image.name),
                  "classification": lambda s: (s, str(image), 1)}
        for s in served.values():
            RUNS[s.task]([inputs[s.task](s)])
