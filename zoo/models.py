"""Registers every model family with the registry. Adding a family means adding its lines here."""

from text import recipes as text_recipes
from text.transformer import TransformerSeq2Seq
from zoo.registry import register_family

register_family("transformer", "translation", TransformerSeq2Seq, text_recipes.TRANSFORMER)
