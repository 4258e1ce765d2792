"""Reference models that several text test files compare against: tiny random HF GPT-2 and T5 models, each
with the zoo model converted from the same weights."""

import pytest
import torch

from text.convert_gpt2 import config_from_hf as gpt2_config
from text.convert_gpt2 import convert_gpt2
from text.convert_t5 import config_from_hf as t5_config
from text.convert_t5 import convert_t5
from text.gpt2 import GPT2
from text.t5 import T5

NO_DROPOUT = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def _scale_matrices(model: torch.nn.Module, scale: float) -> None:
    """Scale random weights up so next-token distributions are peaked and greedy choices are not near-ties."""
    if scale != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:
                    p.mul_(scale)


@pytest.fixture(scope="session")
def make_gpt2_pair():
    """A factory: (HF GPT2LMHeadModel, zoo GPT2) with the same random weights for GPT2Config(**fields)."""
    transformers = pytest.importorskip("transformers")

    def make(seed: int = 0, scale: float = 1.0, **fields):
        torch.manual_seed(seed)
        hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**{**NO_DROPOUT, **fields})).eval()
        _scale_matrices(hf, scale)
        ours = GPT2(gpt2_config(hf.config.to_dict())).eval()
        ours.load_state_dict(convert_gpt2(hf.state_dict(), ours.config))
        return hf, ours

    return make


@pytest.fixture(scope="session")
def make_t5_pair():
    """A factory: (HF T5ForConditionalGeneration, zoo T5) with the same random weights for T5Config(**fields).

    own_head gives the LM head weights of its own, as the released v1.1 checkpoints have.
    """
    transformers = pytest.importorskip("transformers")

    def make(seed: int = 0, scale: float = 1.0, own_head: bool = False, **fields):
        torch.manual_seed(seed)
        hf = transformers.T5ForConditionalGeneration(transformers.T5Config(**fields)).eval()
        if own_head:
            hf.lm_head.weight = torch.nn.Parameter(torch.randn_like(hf.lm_head.weight) * 0.2)
        _scale_matrices(hf, scale)
        ours = T5(t5_config(hf.config.to_dict())).eval()
        ours.load_state_dict(convert_t5(hf.state_dict(), ours.config))
        return hf, ours

    return make
