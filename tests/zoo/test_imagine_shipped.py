"""The text-to-image weights the repository ships: registered, loadable, and drawing what the prompts say as
the shipped captioner reads it back (the end-to-end test of real weights)."""

import json

import numpy as np
import pytest
import torch

import zoo
from vision.imagine_data import scene_tensors, to_signed
from zoo.shipped import SHIPPED_IMAGINE
from zoo.train.imagine_inference import load_imagine
from zoo.train.readback import SceneReader


def test_the_shipped_model_is_listed_and_loads_by_name():
    assert "dit_shapes" in zoo.list_models(pretrained=True)
    model = zoo.create_model("dit_shapes", pretrained=True)
    loaded = load_imagine(SHIPPED_IMAGINE)
    assert model.config == loaded.model.config
    state = loaded.model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert (SHIPPED_IMAGINE / "model_ema.safetensors").stat().st_size < 10e6


@pytest.mark.slow
def test_the_shipped_weights_draw_the_test_prompts():
    """The first 48 test prompts, seeds 0.., as the export scored all 1,000 of them (imagine_eval.json)."""
    scores = json.loads((SHIPPED_IMAGINE / "imagine_eval.json").read_text())
    _, prompts = scene_tensors("test", 48)
    images = zoo.imagine(prompts, seed=0)  # the shipped model, 20 Euler steps, guidance 3
    pixels = torch.stack([torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in images])  # (B, 3, H, W)
    result, said = SceneReader().score(to_signed(pixels), prompts)
    assert result["exact"] >= scores["test"]["exact"] - 15, list(zip(prompts, said))
    assert result["colour"] >= 90 and result["count"] >= 90
