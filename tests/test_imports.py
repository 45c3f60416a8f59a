"""Dependency direction (design.md): advisor/ and trainer/ never import gradio, trainer/ never
imports advisor/, and the chat's import path stays free of torch and diffusers."""
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


def test_trainer_never_imports_advisor():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "trainer").rglob("*.py")
                 if "advisor" in imported_modules(p)]
    assert offenders == []


@pytest.mark.parametrize("module", ["advisor.chat", "advisor.recommendation.recommend",
                                    "advisor.interview.conversation", "advisor.knowledge.retrieval",
                                    "advisor.runlog.store", "trainer.config", "trainer.vocabulary", "app"])
def test_chat_path_does_not_import_torch(module):
    code = (f"import sys; import {module}; "
            "bad = [m for m in ('torch', 'diffusers', 'transformers', 'sentence_transformers') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
