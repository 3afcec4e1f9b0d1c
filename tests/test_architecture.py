"""The rules of the house (docs/architecture.md), checked on the source so they stay true.

- imports point down the layers, in functions too;
- no import circle among modules (module-level imports);
- an import inside a function must earn its place: it keeps a heavy dependency out of the
  importing module, or it would close a circle at module level.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "marl_augment"

# lowest first; a module may import its own layer and the ones before it
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "errors",
            "outputs",
            "registry",
            "config",
            "spaces",
            "torch_state",
            "processes",
            "download",
            "cards",
        ),
    ),
    ("data", ("data",)),
    ("adapters", ("adapters", "catalog")),
    ("learners and augmenters", ("algos", "augment")),
    ("envs", ("envs",)),
    ("runs", ("training", "bench", "testing")),
    ("cli", ("cli", "__main__")),
]

# what is worth importing late: optional or slow-to-import packages, and slow submodules
HEAVY_PACKAGES = {
    "torch",
    "jax",
    "jaxlib",
    "jaxmarl",
    "optax",
    "flax",
    "chex",
    "zarr",
    "numcodecs",
    "tensorstore",
    "flashbax",
    "mujoco",
    "gymnasium",
    "gymnasium_robotics",
    "pettingzoo",
    "mpe2",
    "matplotlib",
    "PIL",
    "sklearn",
    "scipy",
    "fsspec",
    "safetensors",
    "ray",
    "typer",
    "rich",
}
HEAVY_MODULES = {
    "torch.utils.cpp_extension",
    "rich.markdown",
    "rich.progress",
    "rich.table",
    "importlib.metadata",
}


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(module: str) -> list[tuple[ast.stmt, bool]]:
    """(import statement, inside a function) for every import outside ``if TYPE_CHECKING``."""
    found: list[tuple[ast.stmt, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append((child, in_function))
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            else:
                nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                visit(child, in_function or nested)

    visit(ast.parse(MODULES[module].read_text()), False)
    return found


def _targets(module: str, node: ast.stmt) -> list[str]:
    """The modules an import statement loads (a package's submodule when it names one)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = module.split(".")
        if MODULES[module].name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in MODULES else prefix for a in node.names]


@cache
def _top(module: str) -> frozenset[str]:
    return frozenset(
        t for node, inner in _imports(module) if not inner for t in _targets(module, node)
    )


def _loads(module: str, with_parents: bool) -> set[str]:
    """Every module loaded, transitively, by importing ``module`` (module-level imports)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        names = [".".join(m.split(".")[:i]) for i in range(1, m.count(".") + 2)]
        for x in names if with_parents else [m]:
            if x not in seen:
                seen.add(x)
                if x in MODULES:
                    todo.extend(_top(x))
    return seen


def _heavy(loaded: set[str]) -> set[str]:
    return {x.split(".")[0] for x in loaded} & HEAVY_PACKAGES | {
        h for h in HEAVY_MODULES for x in loaded if x == h or x.startswith(h + ".")
    }


def _layer(module: str) -> int:
    if module == "marl_augment":
        return len(LAYERS)  # the package's face re-exports everything: above every layer
    first = module.split(".")[1]
    for i, (_, names) in enumerate(LAYERS):
        if first in names:
            return i
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and architecture.md")


def test_every_module_has_a_layer():
    for m in MODULES:
        if m != "marl_augment":
            _layer(m)


def test_imports_point_down_the_layers():
    upward = [
        f"{m} ({LAYERS[_layer(m)][0]}) imports {t}"
        for m in MODULES
        if m != "marl_augment"
        for node, _ in _imports(m)
        for t in _targets(m, node)
        if t.startswith("marl_augment") and t != "marl_augment" and _layer(t) > _layer(m)
    ]
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_only_the_command_line_imports_the_package_face():
    users = [
        m
        for m in MODULES
        for node, _ in _imports(m)
        if "marl_augment" in _targets(m, node) and not m.startswith("marl_augment.cli")
        if m != "marl_augment"
    ]
    assert not users, f"modules importing the package root: {users}"


def test_no_import_circles():
    for m in MODULES:
        for t in _top(m):
            if t in MODULES and t != m:
                assert m not in _loads(t, with_parents=False), f"circle: {m} -> {t} -> ... -> {m}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_inside_functions_earn_their_place(module):
    have = _heavy(_loads(module, with_parents=True))
    idle = []
    for node, inner in _imports(module):
        if not inner:
            continue
        gains, circle = set(), False
        for t in _targets(module, node):
            if t.startswith("marl_augment"):
                gains |= _heavy(_loads(t, with_parents=True))
                circle |= module in _loads(t, with_parents=False)
            else:
                gains |= _heavy({t})
        if not (gains - have) and not circle:
            idle.append(f"line {node.lineno}: {ast.unparse(node)}")
    assert not idle, (
        f"{module}: imports inside functions that keep nothing heavy out and close no circle; "
        "move them to the top:\n" + "\n".join(idle)
    )


def test_the_command_line_starts_without_the_heavy_libraries():
    """``marl-augment --help`` (and every command's start) loads the library's pure-Python
    modules and numpy; torch, jax, zarr, the environments and plotting load when a command
    needs them."""
    import json
    import subprocess
    import sys

    code = "import sys, json, marl_augment.cli; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    # the CLI's own tools (Typer, rich's console, tables and bars) and nothing heavier
    assert _heavy(set(loaded)) - {"typer", "rich", "rich.progress", "rich.table"} == set()
