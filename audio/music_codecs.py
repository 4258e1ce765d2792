"""The audio codecs a MusicGen model can sit on, by name: each builds a module with `encode(wav) -> codes (B,
K, T)`, `decode(codes) -> wav`, and sample_rate, frame_rate, num_codebooks, codebook_size."""

from audio.encodec import Encodec, EncodecConfig
from audio.spectral_tokenizer import SpectralTokenizer, SpectralTokenizerConfig

CODECS = {
    # MusicGen's own: EnCodec at 32 kHz, 4 codebooks of 2048 at 50 Hz (facebook/encodec_32khz)
    "encodec_32khz": lambda: Encodec(EncodecConfig()),
    # zoo's k-means codec over log-magnitude spectra, fitted in a minute on the CPU: 4 x 256 at 50 Hz, 16 kHz
    "spectral_16khz": lambda: SpectralTokenizer(SpectralTokenizerConfig()),
    # tiny ones for tests (encodec_test: transformers' EncodecConfig defaults at a tiny size)
    "encodec_test": lambda: Encodec(EncodecConfig(sampling_rate=16000, hidden_size=16, num_filters=4,
                                                  upsampling_ratios=(4, 4), codebook_size=64, num_quantizers=4,
                                                  use_causal_conv=True, use_conv_shortcut=True)),
    "spectral_test": lambda: SpectralTokenizer(SpectralTokenizerConfig(n_fft=256, hop_length=160, codebook_size=32)),
}
