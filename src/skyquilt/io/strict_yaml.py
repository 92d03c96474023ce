"""YAML read strictly: a key given twice in one mapping is an error, not a silent override.

PyYAML, like most YAML readers, keeps the last of two equal keys in a mapping without a
word, so a config file that sets `num_steps` twice runs with whichever came last. This
module finds such keys, at any depth, with the lines of both, by composing the file's
node tree (libyaml's parser where PyYAML has it) without building its values.
"""

from dataclasses import dataclass
from pathlib import Path

import yaml

# libyaml's loader where PyYAML has it: the pure-Python one is several times slower.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class DuplicateKey:
    """A key given twice: its dotted path ('diffusion.num_steps') and both lines (from 1)."""

    key: str
    first_line: int
    second_line: int


def _duplicate_in(node: yaml.Node, path: str) -> DuplicateKey | None:
    """The first key given twice in `node` or below it, in document order."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
                continue
            key = f"{path}.{key_node.value}" if path else str(key_node.value)
            line = key_node.start_mark.line + 1
            identity = (key_node.tag, key_node.value)
            if identity in seen:
                return DuplicateKey(key, seen[identity], line)
            seen[identity] = line
            found = _duplicate_in(value_node, key)
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _duplicate_in(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


def find_duplicate_key(text: str) -> DuplicateKey | None:
    """The first key given twice in a mapping of the YAML (or JSON) `text`, None if none.

    Raises yaml.YAMLError when the text is not YAML.
    """
    for document in yaml.compose_all(text, Loader=LOADER):
        found = _duplicate_in(document, "") if document is not None else None
        if found is not None:
            return found
    return None


class DuplicateKeyError(ValueError):
    """A YAML file that gives a key twice; the message names the key, the file, both lines."""


def load_strict(path: Path | str) -> object:
    """The YAML file at `path`, refused (DuplicateKeyError) when it gives a key twice.

    Raises OSError when it cannot be read and yaml.YAMLError when it is not YAML.
    """
    text = Path(path).read_text()
    found = find_duplicate_key(text)
    if found is not None:
        raise DuplicateKeyError(
            f"key '{found.key}' is given twice in {path} (lines {found.first_line} and "
            f"{found.second_line}); YAML would keep the last one silently, so write it once"
        )
    return yaml.load(text, Loader=LOADER)
