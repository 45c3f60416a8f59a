"""trainer.loop keeps a run's whole state in view: every attribute a TrainingRun method assigns
is declared in `__init__` (what setup builds lives in one RunSetup), checked on the source."""
from __future__ import annotations

import ast
import inspect
import textwrap

from trainer import loop


def undeclared_attributes(cls_source: str) -> list[str]:
    """`self.<name>` assigned in a method (plain, augmented, annotated or unpacked) where
    `__init__` does not assign that name; as "method: name"."""
    cls = ast.parse(textwrap.dedent(cls_source)).body[0]
    methods = [f for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]

    def assigned(fn) -> list[str]:
        targets = []
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign):
                targets += node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets.append(node.target)
        names = []
        for target in targets:
            for t in ast.walk(target):  # tuples and starred targets hold attributes too
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                    names.append(t.attr)
        return names

    declared = {name for f in methods if f.name == "__init__" for name in assigned(f)}
    return [f"{f.name}: {name}" for f in methods if f.name != "__init__" for name in assigned(f)
            if name not in declared]


def test_every_training_run_attribute_is_declared_in_init():
    assert undeclared_attributes(inspect.getsource(loop.TrainingRun)) == []


def test_the_check_finds_attributes_set_outside_init():
    source = '''
    class Run:
        def __init__(self):
            self.step = 0
            self.setup: object | None = None

        def go(self):
            self.step += 1
            self.setup = object()
            self.optimizer = None
            self.a, (self.b, self.step) = 1, (2, 3)
            self.total: int = 0
            self.step_count += 1
    '''
    assert undeclared_attributes(source) == ["go: optimizer", "go: a", "go: b", "go: total", "go: step_count"]
