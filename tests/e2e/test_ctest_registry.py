"""Every test in this directory is registered with ctest (CMakeLists.txt), so none is
silently left out of the suite that CI runs."""

import ast
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_every_test_is_a_ctest():
    cmake = (HERE / "CMakeLists.txt").read_text()
    nodes = set(re.findall(r"\b(test_\w+\.py(?:::\w+)?)\b", cmake))
    missing = []
    for path in sorted(HERE.glob("test_*.py")):
        if path.name in nodes:
            continue
        tree = ast.parse(path.read_text())
        for fn in tree.body:
            if isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_") and \
                    f"{path.name}::{fn.name}" not in nodes:
                missing.append(f"{path.name}::{fn.name}")
    assert not missing, f"not registered in tests/e2e/CMakeLists.txt: {missing}"
