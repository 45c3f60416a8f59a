"""Dependency direction (design.md): advisor/ and trainer/ never import gradio, trainer/ never
imports advisor/ or lab/, advisor/ imports only the trainer's torch-free modules, and the chat's
import path stays free of torch and diffusers."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ["advisor", "trainer"])
def test_packages_never_import_gradio(package):
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / package).rglob("*.py")
                 if "gradio" in imported_modules(p)]
    assert offenders == []


def test_trainer_never_imports_advisor_or_the_lab():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "trainer").rglob("*.py")
                 if {"advisor", "lab"} & imported_modules(p)]
    assert offenders == []


# The trainer's modules the advisor may import: stdlib-only at import time (the run's config, the
# project's vocabulary, and the readers of a run folder's events, memory figures, scores and
# kept checkpoint).
TORCH_FREE_TRAINER = ("trainer.config", "trainer.vocabulary", "trainer.events", "trainer.memory", "trainer.metrics",
                      "trainer.safe_json", "trainer.checkpoint_scores")


def trainer_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("trainer"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("trainer"))
    return out


def test_advisor_imports_only_the_trainers_torch_free_modules():
    used = {(str(p.relative_to(ROOT)), m) for p in (ROOT / "advisor").rglob("*.py") for m in trainer_imports(p)}
    assert {m for _, m in used} <= set(TORCH_FREE_TRAINER), sorted(u for u in used if u[1] not in TORCH_FREE_TRAINER)
    assert {m for _, m in used} >= {"trainer.config", "trainer.vocabulary"}  # the check looks at real imports


def heavy_modules_after_importing(module: str, heavy: tuple[str, ...]) -> list[str]:
    """Which of `heavy` a fresh interpreter has loaded after `import module`."""
    code = f"import sys; import {module}; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", TORCH_FREE_TRAINER)
def test_the_trainers_torch_free_modules_import_nothing_heavy(module):
    assert heavy_modules_after_importing(module, ("torch", "diffusers", "transformers", "peft", "accelerate",
                                                  "numpy")) == []


def test_no_import_cycles_and_no_private_names_across_modules():
    """The packages import in one direction, and a module uses another's public names only."""
    modules = {}
    for package in ("advisor", "trainer", "lab"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    edges: dict[str, set[str]] = {}
    private = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = name.split(".")
                    base = parts if is_package else parts[:-1]
                    base = base[: len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    target = f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                    if target in modules and target != name:
                        edges.setdefault(name, set()).add(target)
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            private.append(f"{name} imports {alias.name} from {target}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.name != name:
                        edges.setdefault(name, set()).add(alias.name)
    assert private == []
    # a cycle shows as a module that reaches itself
    cycles = []
    for start in modules:
        seen, todo = set(), list(edges.get(start, ()))
        while todo:
            m = todo.pop()
            if m == start:
                cycles.append(start)
                break
            if m not in seen:
                seen.add(m)
                todo.extend(edges.get(m, ()))
    assert cycles == []


@pytest.mark.parametrize("module", ["advisor.chat", "advisor.recommendation.recommend",
                                    "advisor.interview.conversation", "advisor.knowledge.retrieval",
                                    "advisor.runlog.store", "advisor.runlog.folders", "app"])
def test_chat_path_does_not_import_torch(module):
    assert heavy_modules_after_importing(module, ("torch", "diffusers", "transformers", "sentence_transformers")) == []
