"""`zoo train --task text-to-music` and `zoo compose` end to end at a tiny config: the run folder, an exact
resume, the WAVs and their records, and one-line refusals."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from safetensors.torch import load_file

import zoo
from tests.zoo.crash import kill_at_checkpoint
from zoo.cli import main
from zoo.shipped import SHIPPED_IMAGINE
from zoo.train.compose import COLUMNS, EVAL_SAMPLING, EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--train-subset", "64", "--val-subset", "4", "-b", "16", "--model-kwargs", "dim=32", "n_layers=1",
        "n_heads=2", "mlp_hidden=64", "text_dim=32", "text_layers=1", "text_heads=2", "text_head_dim=16",
        "text_mlp_hidden=64", "--no-progress", "--threads", "1"]
PROMPTS = ("a fast falling E minor arpeggio on a bright square", "a slow rising C major scale on a soft sine")


def _train_args(out, *more) -> list[str]:
    return ["train", "--task", "text-to-music", "--epochs", "2", "--output", str(out), *map(str, more), *TINY]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compose_runs") / "run"
    assert main(_train_args(out)) == 0
    return out


def test_the_run_leaves_what_people_read(run):
    header, *rows = (run / "summary.csv").read_text().splitlines()
    assert header == ",".join(COLUMNS) and len(rows) == 2
    for epoch in ("epoch0001", "epoch0002"):
        folder = run / "samples" / epoch
        assert sorted(p.name for p in folder.iterdir()) == [*(f"{k}.wav" for k in range(EXAMPLES)),
                                                           "spectrograms.png"]
        assert soundfile.info(folder / "0.wav").samplerate == 16000
    scores = json.loads((run / "compose_eval.json").read_text())
    assert set(scores) == {"test", "holdout", "sampling"} and scores["sampling"] == EVAL_SAMPLING
    assert scores["test"]["clips"] == 4 and 0 <= scores["test"]["note_accuracy"] <= 100
    assert (run / "curves.png").is_file()
    meta = json.loads((run / "best" / "meta.json").read_text())
    assert meta["task"] == "text-to-music" and meta["frames"] == 160 and meta["model_overrides"]["dim"] == 32


def test_a_killed_run_resumes_exactly(run, tmp_path):
    """SIGKILL once the first epoch is checkpointed, --resume, and the weights equal the uninterrupted run's."""
    killed = tmp_path / "killed"
    kill_at_checkpoint([sys.executable, "-m", "zoo", *_train_args(killed)], killed, timeout=300)
    assert os.readlink(killed / "last").endswith("epoch0001"), "the run ended before it could be killed"
    assert main(_train_args(killed, "--resume", killed)) == 0
    resumed = load_file(killed / "last" / "model_ema.safetensors")
    straight = load_file(run / "last" / "model_ema.safetensors")
    assert resumed.keys() == straight.keys() and all(torch.equal(resumed[k], straight[k]) for k in straight)


def test_compose_writes_a_wav_a_spectrogram_and_a_record(run, tmp_path):
    result = subprocess.run([sys.executable, "-m", "zoo", "compose", PROMPTS[0], "--checkpoint", str(run),
                             "--output", str(tmp_path / "x.wav"), "--no-progress", "--threads", "1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    audio, sample_rate = soundfile.read(tmp_path / "x.wav")
    assert sample_rate == 16000 and audio.shape == (round(3.2 * 16000),)  # the clips it was trained on
    assert (tmp_path / "x.png").is_file()
    record = json.loads((tmp_path / "x.json").read_text())
    assert record["prompt"] == PROMPTS[0] and record["duration"] == 3.2 and record["sample_rate"] == 16000
    assert (record["guidance_scale"], record["top_k"]) == (3.0, 250)  # MusicGen's: the run recommends none
    assert record["model"] == "musicgen_melodies" and len(record["weights_sha256"]) == 12


def test_several_prompts_write_numbered_files_of_what_zoo_compose_makes(run, tmp_path):
    out = tmp_path / "x.wav"
    assert main(["compose", *PROMPTS, "--checkpoint", str(run), "--output", str(out), "--duration", "1",
                 "--seed", "3", "--no-progress", "--threads", "1"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-0.json", "x-0.png", "x-0.wav", "x-1.json",
                                                          "x-1.png", "x-1.wav"]
    clips, sample_rate = zoo.compose(list(PROMPTS), run, duration=1.0, seed=3)
    for k, clip in enumerate(clips):
        saved, rate = soundfile.read(tmp_path / f"x-{k}.wav")
        assert rate == sample_rate and saved.shape == clip.shape == (16000,)
        assert np.abs(saved - np.clip(clip, -1, 1)).max() < 1e-4  # 16-bit samples
        assert json.loads((tmp_path / f"x-{k}.json").read_text())["prompt"] == PROMPTS[k]


@pytest.mark.parametrize("args, message", [
    (["a slow rising H major scale on a soft sine"], "does not know the word 'h'"),
    (["a slow rising C major scale on a tuba"], "does not know the word 'tuba'"),
    ([PROMPTS[0], "--duration", "60"], "--duration 60 s is outside what this model can compose"),
    ([PROMPTS[0], "--top_k", "0"], "top_k must be at least 1"),
    ([PROMPTS[0], "--guidance_scale", "-1"], "guidance_scale must be 0 or more"),
])
def test_bad_input_is_one_line(run, args, message, tmp_path, capsys):
    assert main(["compose", *args, "--checkpoint", str(run), "--output", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_a_checkpoint_of_another_task_is_refused(tmp_path, capsys):
    assert main(["compose", PROMPTS[0], "--checkpoint", str(SHIPPED_IMAGINE), "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a text-to-music checkpoint" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--dataset", "digits"], "use --dataset melodies"),
    (["--model", "vit_test"], "needs a text-to-music model"),
    (["--model", "musicgen_test"], "is not one zoo trains"),
])
def test_training_another_dataset_or_model_is_refused(args, message, tmp_path, capsys):
    assert main(["train", "--task", "text-to-music", *args, "--output", str(tmp_path / "x"), "--no-progress",
                 "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
