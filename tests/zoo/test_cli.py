"""`zoo list` and `zoo info` as a user runs them."""

import subprocess
import sys


def zoo_cli(*args):
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, timeout=120)


def test_zoo_list_prints_a_table():
    result = zoo_cli("list", "transformer*")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "task", "params", "weights"]
    assert any(line.startswith("transformer_base") and "63.1M" in line for line in lines)


def test_zoo_list_task_filter():
    result = zoo_cli("list", "--task", "translation")
    assert result.returncode == 0 and "transformer_test" in result.stdout


def test_zoo_info_prints_config_and_weights():
    result = zoo_cli("info", "transformer_base")
    assert result.returncode == 0, result.stderr
    assert "parameters: 63,082,496" in result.stdout
    assert "mlp_hidden: 2048" in result.stdout
    assert "weights:" in result.stdout


def test_unknown_model_is_one_line_and_exit_2():
    result = zoo_cli("info", "transfomer_base")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "did you mean transformer_base" in result.stderr
    assert "Traceback" not in result.stderr
