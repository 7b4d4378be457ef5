"""The import contracts of ``make contracts`` catch what they promise to.

Each case copies ``nua`` and ``pyproject.toml`` to a temporary directory, adds one
import that breaks one rule, and runs ``lint-imports`` there (it imports the
package from its working directory): the copy as it is keeps every contract, the
broken copy breaks the one named. So a contract cannot pass merely because it
checks nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

LAYERS = "Each layer imports only the layers below it"
ACYCLIC = "No import circle between the modules or packages of one package"
PACKAGE_ROOT = "Nothing imports the package root (its lazy facade imports the daemon layer)"
PRIVATE = "A private module (nua.x._y) is imported from its own package only"
CONTRACTS = (LAYERS, ACYCLIC, PACKAGE_ROOT, PRIVATE)


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "nua", tmp_path / "nua", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=where, capture_output=True, text=True, timeout=60, check=False
    )


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(f"\n{line}\n")


def test_the_code_as_it_is_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    for name in CONTRACTS:
        assert f"{name} KEPT" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("model/text.py", "from nua.actors import directory", LAYERS),  # the model reaching up to the actors
        ("actors/sentinel.py", "from nua.daemon import notify", LAYERS),  # an actor reaching up to the daemon
        ("rpc/registry.py", "from nua.rpc import plugins", ACYCLIC),  # the registry is a leaf of RPC
        ("settings.py", "import nua", PACKAGE_ROOT),
        ("daemon/tree.py", "from nua.actors import _hidden", PRIVATE),
    ],
)
def test_one_wrong_import_breaks_its_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    where = _copy(tmp_path)
    (where / "nua" / "actors" / "_hidden.py").write_text('"""A private module of nua.actors."""\n', encoding="utf-8")
    _append(where / "nua" / module, line)
    result = _lint(where)
    assert result.returncode != 0
    assert f"{broken} BROKEN" in result.stdout, result.stdout
