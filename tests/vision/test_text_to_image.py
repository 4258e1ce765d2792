"""Text-to-image at a tiny random config: seeds that reproduce an image exactly, batches that do not change
it, guidance that matters, and the prompt refusals; the read-back grammar the grades rest on."""

import pytest
import torch

from shared.errors import ConfigError, InputError
from vision.caption_data import CaptionVocab
from vision.imagine_data import encode_prompts
from vision.imagine_metrics import parse_scene, readback_scores
from vision.shapes import ShapesDataset
from zoo import registry
from zoo.train.imagine_inference import draw

PROMPTS = ["a red circle", "a blue square left of a green cross", "an orange diamond above a purple triangle"]


@pytest.fixture(scope="module")
def model_and_vocab():
    torch.manual_seed(0)
    vocab = CaptionVocab.build(ShapesDataset("train", size=200).captions)
    model = registry.create_model("text_to_image_test", vocab_size=len(vocab), latent_scale=0.7).eval()
    for p in model.parameters():  # adaLN-Zero starts as the identity: give every weight a value
        torch.nn.init.normal_(p, std=0.2)
    return model, vocab


def test_the_same_seed_gives_the_same_image(model_and_vocab):
    model, vocab = model_and_vocab
    first = draw(model, vocab, PROMPTS, seeds=[5, 6, 7], num_inference_steps=4)
    again = draw(model, vocab, PROMPTS, seeds=[5, 6, 7], num_inference_steps=4)
    assert first.shape == (3, 3, 16, 16) and torch.equal(first, again)
    other = draw(model, vocab, PROMPTS, seeds=[8, 9, 10], num_inference_steps=4)
    assert not torch.allclose(first, other)


def test_an_image_does_not_depend_on_its_batch(model_and_vocab):
    model, vocab = model_and_vocab
    batch = draw(model, vocab, PROMPTS, seeds=[0, 1, 2], num_inference_steps=4)
    alone = draw(model, vocab, PROMPTS[1:2], seeds=[1], num_inference_steps=4)
    torch.testing.assert_close(batch[1:2], alone, atol=1e-4, rtol=0)


@pytest.mark.parametrize("scheduler", ["ddim", "ddpm"])
def test_an_epsilon_model_samples_with_ddim_and_ddpm_reproducibly(model_and_vocab, scheduler):
    _, vocab = model_and_vocab
    torch.manual_seed(0)
    model = registry.create_model("text_to_image_test", vocab_size=len(vocab), objective="ddpm").eval()
    a = draw(model, vocab, PROMPTS[:2], seeds=[0, 1], num_inference_steps=3, scheduler=scheduler)
    b = draw(model, vocab, PROMPTS[:2], seeds=[0, 1], num_inference_steps=3, scheduler=scheduler)
    assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="cannot sample"):
        draw(model, vocab, PROMPTS[:1], seeds=[0], scheduler="euler")


def test_guidance_scale_changes_the_image(model_and_vocab):
    model, vocab = model_and_vocab
    plain = draw(model, vocab, PROMPTS[:1], seeds=[0], num_inference_steps=4, guidance_scale=1.0)
    guided = draw(model, vocab, PROMPTS[:1], seeds=[0], num_inference_steps=4, guidance_scale=4.0)
    assert not torch.allclose(plain, guided)


def test_a_negative_prompt_takes_the_empty_prompts_place(model_and_vocab):
    """Guidance steers away from the negative prompt: given the empty prompt itself it draws the default image,
    another prompt draws a different one, each row its own, and without guidance it is not read."""
    model, vocab = model_and_vocab
    tokens, mask = encode_prompts(vocab, PROMPTS[:2], model.config.max_prompt_len)

    def generate(**options):
        generators = [torch.Generator().manual_seed(s) for s in (0, 1)]
        return model.generate(tokens, mask, num_inference_steps=3, generators=generators, **options)

    torch.testing.assert_close(generate(negative=model.null_prompt(2, "cpu")), generate(), atol=1e-6, rtol=0)
    draw_two = lambda **kw: draw(model, vocab, PROMPTS[:2], seeds=[0, 1], num_inference_steps=3, **kw)  # noqa: E731
    away = draw_two(negative_prompts=["a green cross", "a red circle"])
    assert not torch.allclose(draw_two(), away)
    alone = draw(model, vocab, PROMPTS[1:2], seeds=[1], num_inference_steps=3, negative_prompts="a red circle")
    torch.testing.assert_close(away[1:], alone, atol=1e-4, rtol=0)
    unguided = dict(guidance_scale=1.0)
    assert torch.equal(draw_two(**unguided), draw_two(negative_prompts="a green cross", **unguided))
    with pytest.raises(InputError, match="3 negative prompts for 2 prompts"):
        draw_two(negative_prompts=["a red circle"] * 3)


def test_bad_prompts_and_settings_are_refused_in_one_line(model_and_vocab):
    model, vocab = model_and_vocab
    for prompts, match in ((["a red zebra"], "does not know the word 'zebra'"), (["..."], "has no words"),
                           ([" ".join(["a red circle"] * 10)], "at most")):
        with pytest.raises(InputError, match=match) as err:
            encode_prompts(vocab, prompts, model.config.max_prompt_len)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="num_inference_steps must be at least 1"):
        draw(model, vocab, PROMPTS[:1], seeds=[0], num_inference_steps=0)


def test_read_back_scores_count_each_attribute():
    assert parse_scene("a red circle left of a blue square") == ("row", [("red", "circle"), ("blue", "square")])
    assert parse_scene("an orange cross") == (None, [("orange", "cross")])
    scores = readback_scores(
        ["a red circle left of a blue square", "a green cross", "a red circle above a blue square"],
        ["a red circle left of a blue square", "a green diamond", "a red circle left of a blue triangle"])
    assert scores["exact"] == pytest.approx(100 / 3)
    assert scores["count"] == 100.0
    assert scores["colour"] == 100.0
    assert scores["shape"] == pytest.approx(300 / 5)  # 3 of the 5 prompt objects have the right shape
    assert scores["relation"] == 50.0
    assert scores["by_count"] == {1: 0.0, 2: 50.0}
