"""Spaces packaging stays in step with the project: requirements.txt and README front matter."""
import re
import sys
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def names(reqs):
    return {re.split(r"[<>=!;\[ ]", r.strip(), maxsplit=1)[0].lower() for r in reqs if r.strip()}


def test_requirements_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = [d for d in project["dependencies"] if "python_version < '3.11'" not in d]
    reqs = [line for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert names(reqs) == names(deps) - {"gradio"}
    assert not any("bitsandbytes" in r for r in reqs), "CUDA-only packages belong in the gpu extra"


def test_readme_front_matter_for_spaces():
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert {"sdk_version", "python_version", "suggested_hardware"} <= set(meta)
    import gradio
    assert meta["sdk_version"].split(".")[0] == gradio.__version__.split(".")[0]
