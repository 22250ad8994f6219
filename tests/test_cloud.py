"""The Streamlit Community Cloud entry point runs the same app, and its dependency file cannot drift from ours.

Cloud reads the dependency file beside the entry point first (cloud/requirements.txt), so that file differs from
the root requirements.txt only in where torch comes from (PyTorch's CPU-only index). The root file must never name
another host: `pip install -r requirements.txt` on a fresh machine reaches only the package registry.
"""

from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def _requirements(path: Path) -> tuple[dict[str, str], list[str]]:
    """{package name: its full requirement line}, and the option lines (starting with '-')."""
    packages: dict[str, str] = {}
    options: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            options.append(line)
            continue
        name = re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0].lower().replace("_", "-")
        packages[name] = line
    return packages, options


def test_cloud_requirements_name_the_same_packages_as_the_root_file() -> None:
    root, root_options = _requirements(ROOT / "requirements.txt")
    cloud, cloud_options = _requirements(ROOT / "cloud" / "requirements.txt")
    assert set(cloud) == set(root), set(cloud) ^ set(root)
    for name, line in root.items():
        assert cloud[name] == line, f"{name}: cloud says {cloud[name]!r}, root says {line!r}"
    assert cloud_options == [CPU_INDEX]  # torch's CPU build: the only difference
    assert root_options == []  # the root file reaches no other host


def test_cloud_entry_point_starts_the_same_app() -> None:
    at = AppTest.from_file(str(ROOT / "cloud" / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Attack Lab"
    assert at.button(key="run") is not None and not at.button(key="run").disabled
