"""The documentation stays true to the tree: every relative link resolves inside the repository, the
architecture page names every folder of the package, and the README stays short.
Run: `.venv/bin/python -m pytest tests/test_docs.py`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "clusters" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
README_MAX_CHARACTERS = 12_000


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://|mailto:|#", target):
            continue
        resolved = (page.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
        assert resolved.exists(), f"{page.name} links to a missing file: {target}"


def test_the_architecture_page_names_every_folder_of_the_package():
    page = (ROOT / "docs" / "architecture.md").read_text()
    package = ROOT / "skillit_ray"
    folders = sorted({path.parent.relative_to(package) for path in package.rglob("__init__.py")} - {Path(".")})
    assert folders and not [f"{folder}/" for folder in folders if f"{folder}/" not in page]


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text()) <= README_MAX_CHARACTERS
