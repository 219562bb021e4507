"""The package's shape (docs/architecture.md): imports only go down the layers, no module
imports itself back through others, and no module grows past 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import lrgym

PACKAGE = Path(lrgym.__file__).parent
# The layer of each sub-package or top-level module: a module may import its own layer or lower.
LAYERS = {
    "tasks": 0, "trainee": 1, "environment": 2, "vec_env": 3, "runners": 3, "checkpoints": 3, "agents": 4,
    "callbacks": 5, "resume": 5, "train": 6, "evaluation": 6, "controller": 6, "commands": 7, "cli": 8,
}
MAX_MODULE_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def lrgym_imports() -> dict[str, set[str]]:
    """Each module of lrgym -> the lrgym modules it imports from (anywhere in the file)."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lrgym."):
                imported.add(node.module)
        graph[module_name(path)] = imported
    return graph


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_sub_package_and_top_level_module_has_a_layer():
    names = {module.split(".")[1] for module in lrgym_imports() if module.count(".") >= 1}
    assert names <= set(LAYERS), f"give these a layer in LAYERS and docs/architecture.md: {names - set(LAYERS)}"


def test_imports_never_run_back_up_the_layers():
    upward = [
        f"{module} -> {target}"
        for module, targets in lrgym_imports().items()
        for target in targets
        if layer(module) is not None and layer(target) is not None and layer(target) > layer(module)
    ]
    assert upward == []


def test_no_module_imports_itself_back_through_others():
    graph = lrgym_imports()
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        for target in graph.get(module, ()):
            if target in path:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in visited:
                visited.add(target)
                visit(target, path + [target])

    visited: set[str] = set()
    for module in graph:
        if module not in visited:
            visited.add(module)
            visit(module, [module])
    assert cycles == []


def test_no_module_is_over_400_lines():
    long = {module_name(path): n for path in PACKAGE.rglob("*.py") if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}, f"split these: {long}"
