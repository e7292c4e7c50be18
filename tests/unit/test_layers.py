"""No module imports from a layer above its own (docs/architecture.md, "Layers").

Every `import critix.x` / `from critix.x import y` in src/critix, at module level or inside a function, is read
with `ast`; a module may import its own layer or lower ones only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "critix"

# Lowest first. A module's layer is that of its longest matching prefix (dotted name under critix).
LAYERS: list[tuple[str, ...]] = [
    ("types", "references", "provenance", "validation", "files", "optim", "__init__"),
    ("values", "nets", "envs", "data", "stats", "policy_losses"),
    ("agents",),
    ("train",),
    ("policy", "export"),
    ("bench",),
    ("sweep",),
    ("cli",),
]


def layer_of(name: str) -> int:
    """Layer index of a dotted module name under critix ('train.run' -> 3)."""
    first = name.split(".")[0]
    for index, members in enumerate(LAYERS):
        if first in members:
            return index
    raise AssertionError(f"critix.{name} belongs to no layer: add it to LAYERS and to docs/architecture.md")


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name under critix) of every critix import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("critix"):
            base = node.module.removeprefix("critix").lstrip(".")
            if base:
                found.append((node.lineno, base))
            else:  # from critix import agents, validation, __version__ (a name of critix/__init__.py)
                found += [(node.lineno, alias.name if (SRC / alias.name).exists() or (SRC / f"{alias.name}.py").exists()
                           else "__init__") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.removeprefix("critix.")) for a in node.names if a.name.startswith("critix.")]
    return found


def modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_layer_of_knows_every_module() -> None:
    for path in modules():
        layer_of(".".join(path.relative_to(SRC).with_suffix("").parts))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_imports_from_a_layer_above_its_own(path: Path) -> None:
    own = layer_of(".".join(path.relative_to(SRC).with_suffix("").parts))
    upward = [f"line {line}: critix.{name}" for line, name in imports_of(path) if layer_of(name) > own]
    assert not upward, f"{path.relative_to(SRC)} (layer {own}) imports from above: {upward}"


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from critix.train.run import execute\n")
    assert [layer_of(name) for _, name in imports_of(bad)] == [layer_of("train")]
    assert layer_of("train") > layer_of("data")
