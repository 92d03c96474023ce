"""The documents a user reads (README.md, config/README.md, docs/*.md) hold together: every
relative link reaches a file and, with an anchor, a heading of it; no paragraph stands on two
pages; the README stays a front door."""

import re
from pathlib import Path

from skyquilt_testing.workflow import REPO

PAGES = [REPO / "README.md", REPO / "config" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*```")
# A paragraph this long said twice is a page repeating another, not a shared phrase.
REPEATED_WORDS = 30


def prose(page: Path) -> list[str]:
    """The lines of `page` outside fenced code blocks."""
    lines, fenced = [], False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of every heading of `page`."""
    return {anchor(line.lstrip("#")) for line in prose(page) if re.match(r"^#{1,6} ", line)}


def broken_links(page: Path) -> list[str]:
    """The relative links of `page` whose file or heading does not exist."""
    broken = []
    for target in (match for line in prose(page) for match in LINK.findall(line)):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:: not ours to check
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and (linked.suffix != ".md" or fragment not in anchors(linked)):
            broken.append(f"{target}: no heading #{fragment} in {linked.relative_to(REPO)}")
    return broken


def paragraphs(page: Path) -> list[str]:
    """The prose paragraphs of `page`, whitespace folded."""
    text = "\n".join(prose(page))
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", text) if block.strip()]


def test_every_relative_link_and_anchor_of_the_documents_resolves():
    broken = {str(page.relative_to(REPO)): broken_links(page) for page in PAGES}
    assert {page: links for page, links in broken.items() if links} == {}


def test_no_paragraph_of_the_documents_stands_on_two_pages():
    seen: dict[str, str] = {}
    repeated = []
    for page in PAGES:
        for paragraph in paragraphs(page):
            if len(paragraph.split()) < REPEATED_WORDS:
                continue
            name = str(page.relative_to(REPO))
            if paragraph in seen:
                repeated.append(f"{seen[paragraph]} and {name}: {paragraph[:80]}...")
            seen[paragraph] = name
    assert repeated == []


def test_the_readme_is_a_front_door_of_at_most_250_lines():
    readme = (REPO / "README.md").read_text().splitlines()
    assert len(readme) <= 250
    headings = [line for line in readme if line.startswith("## ")]
    assert headings == [
        "## Quick start",
        "## Everyday commands",
        "## Running your own model",
        "## Outputs",
        "## Where to read next",
    ]
    for page in PAGES[1:]:  # every other page is reachable from it
        assert str(page.relative_to(REPO)) in "\n".join(readme), page
