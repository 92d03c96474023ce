"""YAML read strictly: a key given twice is found at any depth, with both lines."""

import pytest

from skyquilt.io.strict_yaml import DuplicateKey, DuplicateKeyError, find_duplicate_key, load_strict

CONFIG = """\
model_path: models/denoiser/0
diffusion:
  num_steps: 3
  sampler:
    type: lms
    config: {}
start_dates:
  - "2000-04-03 0h"
render:
  fields:
    - {variable: geopotential, level: 500}
"""


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (CONFIG + "model_path: other\n", DuplicateKey("model_path", 1, 12)),
        (
            CONFIG.replace("  num_steps: 3\n", "  num_steps: 3\n  num_steps: 4\n"),
            DuplicateKey("diffusion.num_steps", 3, 4),
        ),
        (
            CONFIG.replace("    type: lms\n", "    type: lms\n    type: ddim\n"),
            DuplicateKey("diffusion.sampler.type", 5, 6),
        ),
        (
            CONFIG.replace("{variable: geopotential,", "{variable: geopotential, variable: u,"),
            DuplicateKey("render.fields.0.variable", 11, 11),
        ),
        ('{"seed": 1, "seed": 2}', DuplicateKey("seed", 1, 1)),  # JSON too
    ],
    ids=["top", "nested", "deeper", "in_a_list", "json"],
)
def test_a_key_given_twice_is_found_with_both_lines(text, found):
    assert find_duplicate_key(text) == found


def test_distinct_keys_and_merges_are_not_duplicates():
    assert find_duplicate_key(CONFIG) is None
    merged = "base: &base {cpus: 1}\ngen:\n  <<: *base\n  cpus: 2\n"
    assert find_duplicate_key(merged) is None
    assert find_duplicate_key("a: 1\n'1': 2\n1: 3\n") is None  # a string and an int key


def test_load_strict_names_the_key_the_file_and_the_lines(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("train:\n  blanket_size: 8\n  blanket_size: 4\n")
    with pytest.raises(DuplicateKeyError) as raised:
        load_strict(path)
    assert str(raised.value) == (
        f"key 'train.blanket_size' is given twice in {path} (lines 2 and 3); YAML would keep "
        "the last one silently, so write it once"
    )
    path.write_text(CONFIG)
    assert load_strict(path)["diffusion"]["num_steps"] == 3
