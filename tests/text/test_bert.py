"""BERT at a tiny random config against transformers' BertModel / BertForMaskedLM /
BertForSequenceClassification, the HF converter and folder loading, and input errors."""

import dataclasses
import json
import os
import pickle

import pytest
import torch

import zoo
from shared.errors import ConfigError, InputError, WeightsError
from text.bert import Bert, BertConfig
from text.convert_bert import convert_bert, load_hf_bert

transformers = pytest.importorskip("transformers")

TINY = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0)


def hf_config(**changes):
    return transformers.BertConfig(**{**TINY, **changes})


def zoo_config(task: str, **changes) -> BertConfig:
    return dataclasses.replace(zoo.registry.get_entry("bert_test").config, task=task, **changes)


def hf_model(cls_name: str, seed: int = 0, **changes):
    torch.manual_seed(seed)
    model = getattr(transformers, cls_name)(hf_config(**changes)).eval()
    with torch.no_grad():  # HF zero-inits biases, unit-inits norms: randomise them so the mapping is tested
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def inputs(batch: int = 3, length: int = 10, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 128, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 6:] = 0  # padding
    mask[2, 2:] = 0
    types = torch.randint(0, 2, (batch, length), generator=g)
    return ids, mask, types


CASES = [("BertModel", "features"), ("BertForMaskedLM", "masked-lm"),
         ("BertForSequenceClassification", "classification")]


@pytest.mark.parametrize("hf_class, task", CASES)
def test_parity_with_transformers(hf_class, task):
    reference = hf_model(hf_class, num_labels=3)
    model = Bert(zoo_config(task, num_classes=3)).eval()
    model.load_state_dict(convert_bert(reference.state_dict(), model.config), strict=True)
    ids, mask, types = inputs()
    with torch.no_grad():
        ref = reference(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        out = model(ids, mask, types)
        bare = model(ids)  # no mask, no token types
        ref_bare = reference(input_ids=ids)
    want = ref.last_hidden_state if task == "features" else ref.logits
    assert out.shape == want.shape
    torch.testing.assert_close(out, want, atol=1e-4, rtol=0)
    torch.testing.assert_close(bare, ref_bare[0], atol=1e-4, rtol=0)
    hidden = model.forward_features(ids, mask, types)
    torch.testing.assert_close(hidden, ref.hidden_states[-1], atol=1e-4, rtol=0)
    if task == "features":
        torch.testing.assert_close(model.pooled(hidden), ref.pooler_output, atol=1e-4, rtol=0)


def test_padding_does_not_change_real_tokens():
    model = Bert(zoo_config("features")).eval()
    ids = inputs()[0][:1, :6]
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 4])
    with torch.no_grad():
        torch.testing.assert_close(model(padded, mask)[:, :6], model(ids), atol=1e-5, rtol=0)


def test_embedding_task_is_mean_over_real_tokens_normalised():
    reference = hf_model("BertModel")
    model = Bert(zoo_config("embedding")).eval()
    model.load_state_dict(convert_bert(reference.state_dict(), model.config), strict=True)
    ids, mask, types = inputs()
    with torch.no_grad():
        hidden = reference(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        w = mask.unsqueeze(-1).float()
        want = torch.nn.functional.normalize((hidden * w).sum(1) / w.sum(1), dim=-1)
        got = model(ids, mask, types)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(3))


def _save_hf(model, folder, safetensors: bool = True):
    folder.mkdir(parents=True, exist_ok=True)
    if safetensors:
        model.save_pretrained(folder)
    else:  # the pickle format older checkpoints use, read back through weights_only
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
        model.config.to_json_file(folder / "config.json")
    return folder


@pytest.mark.parametrize("safetensors", [True, False])
def test_create_model_from_hf_folder(tmp_path, safetensors):
    reference = hf_model("BertForMaskedLM")
    folder = _save_hf(reference, tmp_path / "hf", safetensors)
    sizes = {f: getattr(zoo_config("masked-lm"), f) for f in ("vocab_size", "dim", "n_layers", "n_heads",
                                                             "mlp_hidden", "max_len")}
    model = zoo.create_model("bert-base-uncased", pretrained=folder, **sizes)
    ids, mask, types = inputs()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(ids, mask, types),
                                   reference(input_ids=ids, attention_mask=mask, token_type_ids=types).logits,
                                   atol=1e-4, rtol=0)
    assert model.config.task == "masked-lm"
    assert "head.decoder.weight" not in model.state_dict()  # tied to the token embedding


def test_pretraining_checkpoint_loads_into_every_task(tmp_path):
    # bert-base-uncased is a BertForPreTraining checkpoint: MLM head, next-sentence head, pooler, old names.
    reference = hf_model("BertForPreTraining")
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in reference.state_dict().items()}
    folder = tmp_path / "pretraining"
    folder.mkdir()
    torch.save(state, folder / "pytorch_model.bin")
    reference.config.to_json_file(folder / "config.json")
    ids, mask, types = inputs()
    with torch.no_grad():
        ref = reference(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    for task in ("features", "masked-lm", "embedding", "classification"):
        model = load_hf_bert(folder, Bert(zoo_config(task)).eval())
        with torch.no_grad():
            hidden = model.forward_features(ids, mask, types)
            torch.testing.assert_close(hidden, ref.hidden_states[-1], atol=1e-4, rtol=0)
            if task == "masked-lm":
                torch.testing.assert_close(model(ids, mask, types), ref.prediction_logits, atol=1e-4, rtol=0)
            if task == "classification":  # no classifier in the checkpoint: a fresh zero head, trunk loaded
                assert torch.count_nonzero(model.head.fc.weight) == 0
                torch.testing.assert_close(model(ids, mask, types), torch.zeros(3, 2))


class _RunsCode:
    """A pickle that would run a shell command if unpickled without weights_only."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_weight_errors_name_the_problem(tmp_path):
    reference = hf_model("BertModel")
    config = zoo_config("features")
    state = reference.state_dict()
    with pytest.raises(WeightsError, match="unexpected weight 'encoder.layer.0.attention.self.rotary'"):
        convert_bert({**state, "encoder.layer.0.attention.self.rotary": torch.zeros(1)}, config)
    folder = _save_hf(reference, tmp_path / "ok")
    with pytest.raises(WeightsError, match="hidden_size=32, this model dim=48; .* pass dim=32"):
        load_hf_bert(folder, Bert(zoo_config("features", dim=48)))
    with pytest.raises(WeightsError, match="vocab_size=128, this model vocab_size=30522"):
        zoo.create_model("minilm_l6", pretrained=folder)
    missing = {k: v for k, v in state.items() if "layer.1.output.dense.weight" not in k}
    torch.save(missing, (tmp_path / "missing").mkdir() or tmp_path / "missing" / "pytorch_model.bin")
    with pytest.raises(WeightsError, match="missing weight 'bert.encoder.blocks.1.mlp.fc2.weight'"):
        load_hf_bert(tmp_path / "missing" / "pytorch_model.bin", Bert(config))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(WeightsError, match="cannot read safetensors"):
        load_hf_bert(broken, Bert(config))
    evil = tmp_path / "evil" / "pytorch_model.bin"
    evil.parent.mkdir()
    marker = tmp_path / "executed"
    evil.write_bytes(pickle.dumps({"x": _RunsCode(f"touch {marker}")}, protocol=2))
    with pytest.raises(WeightsError, match="not a plain state dict"):
        load_hf_bert(evil.parent, Bert(config))
    assert not marker.exists()
    with pytest.raises(WeightsError, match="no weights in this folder"):
        load_hf_bert(tmp_path, Bert(config))
    (broken / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(WeightsError, match="not a BERT"):
        load_hf_bert(broken, Bert(config))
    with pytest.raises(WeightsError, match="no weights for bert_base_uncased|does not exist"):
        zoo.create_model("bert_base_uncased", pretrained=tmp_path / "nowhere")


def test_input_errors():
    model = Bert(zoo_config("masked-lm")).eval()
    with pytest.raises(InputError, match=r"token ids must lie in \[0, 128\)"):
        model(torch.tensor([[1, 500]]))
    with pytest.raises(InputError, match="longer than this model's 64"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(InputError, match="attention_mask has shape"):
        model(torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 4))
    with pytest.raises(InputError, match="shape \\(batch, length\\)"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ConfigError, match="unknown BERT task 'bogus'"):
        zoo.create_model("bert_test", task="bogus")
    with pytest.raises(ConfigError, match="no pooler"):
        model.pooled(torch.zeros(1, 3, 32))


def test_registry_names_sizes_and_heads():
    assert zoo.registry.get_entry("bert-base-uncased").name == "bert_base_uncased"
    assert zoo.registry.get_entry("google-bert/bert-large-uncased").name == "bert_large_uncased"
    assert zoo.registry.get_entry("sentence-transformers/all-MiniLM-L6-v2").name == "minilm_l6"
    assert zoo.registry.get_entry("all-minilm-l6-v2").name == "minilm_l6"
    with torch.device("meta"):  # full sizes cost nothing on the meta device
        for name, hf_class, changes in (("bert_base_uncased", "BertForMaskedLM", {}),
                                        ("bert_large_uncased", "BertForMaskedLM",
                                         dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                              intermediate_size=4096)),
                                        ("minilm_l6", "BertModel",
                                         dict(hidden_size=384, num_hidden_layers=6, intermediate_size=1536))):
            ref = getattr(transformers, hf_class)(transformers.BertConfig(**changes))
            if hf_class == "BertModel":  # sentence embeddings have no pooler
                ref.pooler = None
            assert zoo.model_info(name)["parameters"] == sum(p.numel() for p in ref.parameters()), name


def test_classifier_contract_and_round_trip(tmp_path):
    model = zoo.create_model("bert_test", task="classification", num_classes=5)
    ids, mask, types = inputs()
    assert model(ids, mask, types).shape == (3, 5)
    assert model.forward_head(model.forward_features(ids, mask), pre_logits=True).shape == (3, 32)
    model.reset_classifier(7)
    assert model(ids).shape == (3, 7) and model.config.num_classes == 7
    with torch.no_grad():
        model.head.fc.weight.normal_()
    model.save_pretrained(tmp_path / "cls")
    loaded = zoo.load_pretrained(tmp_path / "cls").eval()
    torch.testing.assert_close(loaded(ids, mask), model.eval()(ids, mask))
    with pytest.raises(ConfigError, match="no classifier"):
        zoo.create_model("bert_test").reset_classifier(3)


@pytest.mark.parametrize("task", ["masked-lm", "embedding", "features"])
def test_every_parameter_learns(task):
    model = zoo.create_model("bert_test", task=task).train()
    ids, mask, types = inputs()
    out = model(ids, mask, types)
    out.float().pow(2).mean().backward()
    unused = {"bert.pooler.dense.weight", "bert.pooler.dense.bias"} if task == "features" else set()
    for name, p in model.named_parameters():
        if name not in unused:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
