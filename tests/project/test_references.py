"""Every file of the repository that its texts name (in the tests, the package, the workflow,
the benchmarks and the documents, written as `tests/...`, `src/...`, `rules/...`, ...) exists:
a renamed or deleted file leaves no stale reference behind. Outputs under the directories that
.gitignore lists (benchmark results, say) are made by runs, not kept, and are left out."""

import re

from skyquilt_testing.workflow import REPO

TEXTS = ["tests", "src", "rules", "scripts", "benchmarks", "docs", "config", "profiles", "envs"]
TOP_LEVEL = ["README.md", "RELIABILITY.md", "BENCHMARKS.md", "Makefile", "Snakefile"]
# A path into one of the repository's own directories, ending in a file suffix.
REFERENCE = re.compile(
    r"(?<![\w./-])((?:tests|src|rules|scripts|benchmarks|docs|config|profiles|envs)/"
    r"[\w/.-]*\.(?:py|smk|sh|in|md|yaml|toml|rst))\b"
)


def generated(path: str) -> bool:
    """Whether `path` lies under a directory that .gitignore lists (made by runs)."""
    ignored = [
        line for line in (REPO / ".gitignore").read_text().splitlines() if line.endswith("/")
    ]
    return any(path.startswith(directory) for directory in ignored)


def texts() -> list:
    files = [REPO / name for name in TOP_LEVEL]
    for directory in TEXTS:
        files += [
            path
            for path in (REPO / directory).rglob("*")
            if path.is_file()
            and path.suffix in (".py", ".smk", ".sh", ".md", ".yaml", ".rst")
            and ".egg-info" not in str(path)
        ]
    return sorted(files)


def test_every_file_a_text_names_exists():
    missing = {}
    for text in texts():
        named = set(REFERENCE.findall(text.read_text(errors="replace")))
        gone = sorted(path for path in named if not (REPO / path).exists() and not generated(path))
        if gone:
            missing[str(text.relative_to(REPO))] = gone
    assert missing == {}
