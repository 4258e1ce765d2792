"""Named configs of the text families."""

from text.transformer import Seq2SeqConfig

TRANSFORMER = {
    # The paper's base and big models (Table 3), with a shared 37k BPE vocabulary.
    "transformer_base": Seq2SeqConfig(vocab_size=37000, dim=512, n_encoder_layers=6, n_decoder_layers=6,
                                      n_heads=8, mlp_hidden=2048, dropout=0.1),
    "transformer_big": Seq2SeqConfig(vocab_size=37000, dim=1024, n_encoder_layers=6, n_decoder_layers=6,
                                     n_heads=16, mlp_hidden=4096, dropout=0.1),
    "transformer_test": Seq2SeqConfig(vocab_size=64, dim=32, n_encoder_layers=2, n_decoder_layers=2, n_heads=4,
                                      mlp_hidden=64, dropout=0.0, max_len=64),
}
