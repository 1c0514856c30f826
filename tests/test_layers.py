"""The package's layers import one way: a module imports only from its own layer or those below it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "desample"
# Lowest first. data and train sit above model (they make its inputs and its weights); the
# request path is core -> shared -> api; cli, web and bench are the surfaces on top.
LAYERS = [
    {"paths", "ops", "metrics", "imageio"},
    {"stamps"},
    {"data"},
    {"model"},
    {"engine"},
    {"core"},
    {"shared"},
    {"api"},
    {"train"},
    {"bench", "web", "cli", "__main__", "__init__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _part(module: str) -> str:
    """The top-level part of desample a dotted module path belongs to ("desample.stamps.fonts" -> "stamps")."""
    return module.split(".")[1] if module.count(".") else "__init__"


def _imports(path: Path) -> set[str]:
    here = "desample." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.rsplit(".", node.level)[0]
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module and node.module.startswith("desample"):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("desample"))
    return found


def test_no_module_imports_a_layer_above_its_own():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        mine = _part("desample." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        for module in _imports(path):
            theirs = _part(module)
            if theirs in RANK and RANK[theirs] > RANK[mine]:
                wrong.append(f"{path.relative_to(PACKAGE)} ({mine}) imports {module} ({theirs})")
    assert not wrong, "\n".join(sorted(wrong))


def test_every_part_of_the_package_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert parts - {"weights"} <= set(RANK), parts - set(RANK)
