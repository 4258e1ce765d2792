"""Named configs of the text families."""

from text.bert import BertConfig
from text.gpt2 import GPT2Config
from text.t5 import T5Config
from text.transformer import Seq2SeqConfig

TRANSFORMER = {
    # The paper's base and big models (Table 3), with a shared 37k BPE vocabulary.
    "transformer_base": Seq2SeqConfig(vocab_size=37000, dim=512, n_encoder_layers=6, n_decoder_layers=6,
                                      n_heads=8, mlp_hidden=2048, dropout=0.1),
    "transformer_big": Seq2SeqConfig(vocab_size=37000, dim=1024, n_encoder_layers=6, n_decoder_layers=6,
                                     n_heads=16, mlp_hidden=4096, dropout=0.1),
    "transformer_test": Seq2SeqConfig(vocab_size=64, dim=32, n_encoder_layers=2, n_decoder_layers=2,
                                      n_heads=4, mlp_hidden=64, dropout=0.0, max_len=64),
}

GPT2 = {
    # The four released sizes; all share the 50257-token byte-level BPE vocabulary and a 1024-token context.
    "gpt2": GPT2Config(dim=768, n_layers=12, n_heads=12, mlp_hidden=3072),
    "gpt2_medium": GPT2Config(dim=1024, n_layers=24, n_heads=16, mlp_hidden=4096),
    "gpt2_large": GPT2Config(dim=1280, n_layers=36, n_heads=20, mlp_hidden=5120),
    "gpt2_xl": GPT2Config(dim=1600, n_layers=48, n_heads=25, mlp_hidden=6400),
    "gpt2_test": GPT2Config(vocab_size=512, max_len=128, dim=32, n_layers=2, n_heads=4, mlp_hidden=64,
                            dropout=0.0, bos_id=0, eos_id=0, pad_id=0),
}

_T5_V1_1 = dict(gated_mlp=True, activation="gelu_tanh", tie_embeddings=False)
T5 = {
    # v1.0: ReLU FFN, head tied to the embedding. v1.1: gated-GELU FFN, separate head.
    "t5_small": T5Config(dim=512, n_encoder_layers=6, n_decoder_layers=6, n_heads=8, mlp_hidden=2048),
    "t5_base": T5Config(dim=768, n_encoder_layers=12, n_decoder_layers=12, n_heads=12, mlp_hidden=3072),
    "t5_large": T5Config(dim=1024, n_encoder_layers=24, n_decoder_layers=24, n_heads=16, mlp_hidden=4096),
    "t5_v1_1_small": T5Config(dim=512, n_encoder_layers=8, n_decoder_layers=8, n_heads=6, mlp_hidden=1024,
                              **_T5_V1_1),
    "t5_v1_1_base": T5Config(dim=768, n_encoder_layers=12, n_decoder_layers=12, n_heads=12, mlp_hidden=2048,
                             **_T5_V1_1),
    "t5_v1_1_large": T5Config(dim=1024, n_encoder_layers=24, n_decoder_layers=24, n_heads=16, mlp_hidden=2816,
                              **_T5_V1_1),
    "t5_test": T5Config(vocab_size=256, dim=32, n_encoder_layers=2, n_decoder_layers=2, n_heads=4, head_dim=8,
                        mlp_hidden=64, num_buckets=8, max_distance=16, dropout=0.0),
}

BERT = {
    # The paper's BERT-base (L=12, H=768, A=12) and BERT-large (L=24, H=1024, A=16), uncased WordPiece
    # vocabulary; masked LM is their pre-training head. task= / num_classes= overrides pick another head.
    "bert_base_uncased": BertConfig(task="masked-lm"),
    "bert_large_uncased": BertConfig(dim=1024, n_layers=24, n_heads=16, mlp_hidden=4096, task="masked-lm"),
    # sentence-transformers/all-MiniLM-L6-v2: a 6-layer, 384-wide distilled BERT tuned for sentence vectors.
    "minilm_l6": BertConfig(dim=384, n_layers=6, n_heads=12, mlp_hidden=1536, task="embedding"),
    "bert_test": BertConfig(vocab_size=128, dim=32, n_layers=2, n_heads=4, mlp_hidden=64, max_len=64,
                            dropout=0.0, attn_dropout=0.0, task="masked-lm"),
}
