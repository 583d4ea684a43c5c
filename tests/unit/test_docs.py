"""The documentation holds together: README.md is a newcomer's page (at most 200 lines), and every relative link in
it and in docs/*.md points at a file of this repository (never `../` out of it), at a heading that exists when the
link names one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 200
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[(?:[^\]\n]|\n(?!\n))*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _prose(text: str) -> str:
    """The text without code: fenced blocks and inline code (a link there is an example, not a link)."""
    return _CODE.sub("", _FENCE.sub("", text))


def _links(page: Path) -> list[str]:
    return [target for target in _LINK.findall(_prose(page.read_text()))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]  # http:, https:, mailto: are not files here


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces to
    hyphens."""
    text = re.sub(r"`|\*\*|\*|\[|\]\([^)]*\)", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in _FENCE.sub("", page.read_text()).splitlines():
        if match := re.match(r"#{1,6}\s+(.*)", line):
            slug = _slug(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_the_readme_is_at_most_200_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_the_pages_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/configuration.md", "docs/architecture.md", "docs/analyst.md",
            "docs/itick-protocol.md", "docs/tables.md", "benchmarks/README.md"} <= names
    assert _links(ROOT / "README.md"), "the link parser found no link in README.md"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_at_a_file_of_the_repository(page):
    problems = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        try:
            name = resolved.relative_to(ROOT).as_posix()
        except ValueError:
            problems.append(f"{target}: outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"{target}: no such file {name}")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            problems.append(f"{target}: {name} has no heading #{anchor}")
    assert not problems, f"{page.relative_to(ROOT)}: " + "; ".join(problems)


def test_no_link_leaves_the_repository_anywhere():
    """The iTick protocol notes live in docs/itick-protocol.md: nothing points at a sibling checkout's files."""
    offenders = []
    here = Path(__file__).resolve()
    for path in [*ROOT.glob("*.md"), *ROOT.glob("docs/*.md"), *ROOT.glob("benchmarks/*.md"),
                 *(p for d in ("ticklake", "itick_sim", "assets", "resources", "checks", "automation", "demo",
                               "tests", "benchmarks", "scripts") for p in (ROOT / d).rglob("*.py"))]:
        if path.resolve() != here and "itick-api.md" in path.read_text():
            offenders.append(path.relative_to(ROOT).as_posix())
    assert not offenders, f"point these at docs/itick-protocol.md: {offenders}"
