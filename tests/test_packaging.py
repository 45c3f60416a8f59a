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


def _pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not name==version"
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def test_constraints_pin_every_dependency_within_its_range():
    """constraints.txt (what scripts/setup.sh installs) pins each dependency of pyproject.toml,
    the test extra included, at a version its range admits; torch is installed separately."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    for line in project["dependencies"] + project["optional-dependencies"]["test"]:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key == "torch":
            assert key not in pins  # scripts/setup.sh keeps the torch build a machine has
            continue
        assert key in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[key], prereleases=True), f"{req.name}=={pins[key]} is outside {req}"


def test_the_tests_run_on_the_pinned_versions():
    """A set-up that skipped constraints.txt shows here, not as a mysterious failure elsewhere."""
    from importlib import metadata

    drifted = {}
    for name, version in _pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            drifted[name] = (version, None)
            continue
        if installed != version:
            drifted[name] = (version, installed)
    assert drifted == {}, (f"installed versions differ from constraints.txt (pinned, installed): {drifted}; "
                           "run `bash scripts/setup.sh test`, or move the pins with scripts/update_constraints.sh")
