"""The dependency rule: shared <- text <- vision, audio <- zoo."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "shared": {"text", "vision", "audio", "zoo"},
    "text": {"vision", "audio", "zoo"},
    "vision": {"audio", "zoo"},
    "audio": {"vision", "zoo"},
}


def imported_packages(path: Path, module_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if module_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_below_themselves(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_packages(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not offenders, "; ".join(offenders)


def test_shared_imports_torch_only_at_module_level():
    allowed = {"torch", "shared", "__future__"} | set(sys.stdlib_module_names)
    offenders = []
    for path in sorted((ROOT / "shared").rglob("*.py")):
        bad = imported_packages(path, module_level_only=True) - allowed
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not offenders, "; ".join(offenders)
