"""The layers of ARCHITECTURE.md hold in the code: no module imports a higher layer.

Every import counts, including those under ``TYPE_CHECKING`` and inside functions: a type-only
import upward is still a module that must know one above it. The producer side is ordered too
(the call handle, then streams, then client instrumentation, then the tracer), so those modules
import each other in one direction only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "asynctelemetry"

#: Rank of each module (by its first dotted parts); higher ranks may import lower ones only.
#: Layers of ARCHITECTURE.md times ten, with the producer side ordered within layer 5.
RANKS: dict[str, int] = {
    "_record": 10,
    "_exceptions": 10,
    "_version": 10,
    "_conventions": 20,
    "_pricing": 20,
    "_batching": 20,
    "_stats": 20,
    "_http_limits": 20,
    "_wire": 20,
    "_usage": 20,
    "_rows": 20,
    "_stores": 30,
    "_pipeline": 40,
    "_budgets": 40,
    "_export": 40,
    "metrics": 40,
    "_metrics_http": 40,
    "_call": 50,
    "_stream": 51,
    "_context": 51,
    "_step": 51,
    "_instrument": 52,
    "_tracer": 53,
    "_collector": 53,
    "_replay": 53,
    "_racto": 54,
    "cli": 60,
    "_alerts": 60,
    "ui": 60,
    "__init__": 70,
}


def _module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imported(path: Path) -> set[str]:
    """The top-level modules of the package that ``path`` imports, however and wherever."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(PACKAGE).parts) - 1  # packages between the file and the root
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            up = node.level - 1
            if up > depth:
                continue
            if up < depth:
                continue  # within the file's own subpackage
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("asynctelemetry"):
            rest = node.module.split(".")[1:] if node.module else []
            found.add(rest[0] if rest else "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("asynctelemetry."):
                    found.add(alias.name.split(".")[1])
    return found


def _files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if _module_of(p) != "__main__")


@pytest.mark.parametrize(
    "path", [pytest.param(p, id=str(p.relative_to(PACKAGE))) for p in _files()]
)
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    """A module imports only modules of its own layer or lower ones (types included)."""
    own = _module_of(path)
    assert own in RANKS, f"{own} has no layer in this test: add it as ARCHITECTURE.md places it"
    upward = sorted(
        name
        for name in _imported(path)
        if name in RANKS and name != own and RANKS[name] > RANKS[own] and own != "__init__"
    )
    assert not upward, f"{path.relative_to(PACKAGE)} imports {upward} (a higher layer)"


def test_the_producer_modules_import_each_other_one_way() -> None:
    """Call handle, streams, instrumentation and tracer: each knows only those below it."""
    for name, below in {
        "_call.py": set(),
        "_stream.py": {"_call"},
        "_context.py": {"_call"},
        "_tracer.py": {"_call", "_stream", "_context", "_instrument"},
    }.items():
        producers = {"_call", "_stream", "_context", "_instrument", "_tracer"}
        assert _imported(PACKAGE / name) & producers <= below, name
    for path in (PACKAGE / "_instrument").glob("*.py"):
        assert "_tracer" not in _imported(path), path.name
