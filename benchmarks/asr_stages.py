"""Where zoo's transcription time goes, stage by stage: wall-clock timers around the log-mel, the conv stem,
the encoder, the decoder stack, the vocabulary head and the logit rules; what is left of a window's decoding
is the per-token Python of the loop (selection, log-probabilities, bookkeeping).

The timers wrap the stages from the outside (module hooks, wrapped functions), so the code measured is the
code that runs; they add a few microseconds per call, the same for every compute type.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

STAGES = ("log-mel", "conv stem", "encoder", "decoder stack", "head (51,864)", "logit rules", "loop Python",
          "other")


class StageTimer:
    """Sums of wall seconds per stage, and call counts."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, stage: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start
                self.calls[stage] += 1

        return timed

    def hook(self, stage: str, module) -> list:
        """Time every forward of `module` as `stage`; returns the hook handles."""
        starts = []

        def before(_module, _inputs):
            starts.append(time.perf_counter())

        def after(_module, _inputs, _output):
            self.seconds[stage] += time.perf_counter() - starts.pop()
            self.calls[stage] += 1

        return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]


@contextmanager
def timed_stages(model, timer: StageTimer):
    """Within the block, zoo's transcribe() of `model` records its stages in `timer`."""
    import audio.decoding
    import audio.transcribe

    saved = {
        (audio.transcribe, "log_mel_spectrogram"): audio.transcribe.log_mel_spectrogram,
        (audio.decoding, "processors_for"): audio.decoding.processors_for,
        (audio.decoding, "generate"): audio.decoding.generate,
    }

    def processors_for(*args, **kwargs):
        return [timer.wrap("logit rules", p) for p in saved[(audio.decoding, "processors_for")](*args, **kwargs)]

    audio.transcribe.log_mel_spectrogram = timer.wrap("log-mel", audio.transcribe.log_mel_spectrogram)
    audio.decoding.processors_for = processors_for
    audio.decoding.generate = timer.wrap("decoding", audio.decoding.generate)
    handles = timer.hook("conv stem", model.stem) + timer.hook("encoder", model.encoder)
    handles += timer.hook("decoder stack", model.decoder.stack) + timer.hook("head (51,864)", model.decoder.head)
    try:
        yield timer
    finally:
        for handle in handles:
            handle.remove()
        for (module, name), fn in saved.items():
            setattr(module, name, fn)


def stage_table(timer: StageTimer, total: float) -> dict[str, float]:
    """Seconds per stage of one transcription that took `total` seconds."""
    s = timer.seconds
    inside = s["decoder stack"] + s["head (51,864)"] + s["logit rules"]
    out = {name: s[name] for name in ("log-mel", "conv stem", "encoder", "decoder stack", "head (51,864)",
                                      "logit rules")}
    out["loop Python"] = max(s["decoding"] - inside, 0.0)
    out["other"] = max(total - sum(out.values()), 0.0)
    return out


def profile_zoo(audio_path: str, compute_type: str, repeats: int = 1) -> tuple[float, dict[str, float]]:
    """Transcribe greedily on the CPU after a warm-up; (wall seconds, seconds per stage) of the fastest of
    `repeats` runs."""
    from audio.io import load_audio
    from audio.transcribe import transcribe
    from zoo.transcribe import load_model

    model, tokenizer = load_model("tiny.en", device="cpu", compute_type=compute_type)
    audio = load_audio(audio_path)

    def run():
        return transcribe(model, audio, tokenizer=tokenizer, temperature=0.0, beam_size=None, verbose=None)

    transcribe(model, audio[:16000], tokenizer=tokenizer, temperature=0.0, beam_size=None, verbose=None)
    best = None
    for _ in range(repeats):
        timer = StageTimer()
        with timed_stages(model, timer):
            start = time.perf_counter()
            run()
            total = time.perf_counter() - start
        if best is None or total < best[0]:
            best = (total, stage_table(timer, total))
    return best


if __name__ == "__main__":
    import sys

    from shared.threads import apply_threads

    apply_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    for kind in sys.argv[1].split(","):
        total, table = profile_zoo("examples/audio/long.wav", kind, repeats=2)
        print(kind, f"total {total:.3f}", " ".join(f"{k}={v:.3f}" for k, v in table.items()))
