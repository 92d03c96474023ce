"""Hardware as Snakemake resources: SLURM times, memory sizes, and the section of each rule."""

import re

import pytest
from skyquilt_testing.workflow import REPO

from skyquilt.planning.errors import ConfigError
from skyquilt.planning.resources import (
    HARDWARE_SECTIONS,
    RULE_HARDWARE,
    parse_memory,
    parse_slurm_time,
)


@pytest.mark.parametrize(
    ("value", "minutes"),
    [
        ("30", 30),
        ("6:00", 6),
        ("6:30", 7),
        ("1:00:00", 60),
        ("1-0", 1440),
        ("1-2:30", 1590),
        ("0-0:0:30", 1),
    ],
)
def test_slurm_times_in_every_format(value, minutes):
    assert parse_slurm_time(value, "hardware.gen.time") == minutes


def test_unquoted_slurm_time_asks_to_quote_it():
    with pytest.raises(ConfigError, match="quote it"):
        parse_slurm_time(360, "hardware.gen.time")


@pytest.mark.parametrize(
    ("value", "megabytes"), [("60GB", 60000), ("512MB", 512), (2048, 2048), ("1GiB", 1074)]
)
def test_memory_sizes_become_mem_mb(value, megabytes):
    assert parse_memory(value, "hardware.gen.ram") == megabytes


def test_bad_memory_names_the_key():
    with pytest.raises(ConfigError, match="hardware.gen.ram"):
        parse_memory("lots", "hardware.gen.ram")


def test_every_rule_takes_the_resources_of_its_own_name_and_hardware_section():
    """Each rule's threads and resources come from the plan's entry of that very rule
    (rules/*.smk), and each such rule has a hardware section (RULE_HARDWARE)."""
    asked = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^(?=\s*rule \w+:)", smk.read_text(), flags=re.MULTILINE):
            rule = re.match(r"\s*rule (\w+):", block)
            for name in re.findall(r"get_(?:threads|resources)\(\"(\w+)\"\)", block):
                asked.setdefault(rule.group(1) if rule else None, set()).add(name)
    assert asked == {rule: {rule} for rule in RULE_HARDWARE}
    assert set(RULE_HARDWARE.values()) == set(HARDWARE_SECTIONS)
