"""The tiny test config a user can run, .test/config.yaml, is the default config but for the keys
that make it tiny, and passes every parse-time check (the workflow tests run it for real)."""

import yaml
from skyquilt_testing.workflow import REPO, TEST_CONFIG, tiny_demo_config

from skyquilt.planning.workflow import parse_config

# The keys .test/config.yaml changes (each marked `# tiny` there), and the one it adds.
TINY_KEYS = {
    "diffusion",
    "trajectory_sizes",
    "num_samples_per_date",
    "start_dates",
    "blanket_overlap",
    "demo",
}


def test_the_test_config_is_the_default_config_but_for_its_tiny_keys():
    default = yaml.safe_load((REPO / "config/config.yaml").read_text())
    tiny = yaml.safe_load(TEST_CONFIG.read_text())
    assert set(tiny) == set(default) | {"demo"}
    assert {key: value for key, value in tiny.items() if key not in TINY_KEYS} == {
        key: value for key, value in default.items() if key not in TINY_KEYS
    }
    lines = TEST_CONFIG.read_text().splitlines()
    tiny_lines = [line for line in lines if "# tiny" in line and not line.startswith("#")]
    assert {line.split(":")[0] for line in tiny_lines} == TINY_KEYS


def test_the_test_config_passes_every_parse_time_check():
    parsed = parse_config(tiny_demo_config(), REPO)
    assert (parsed.plan.sizes, parsed.plan.date_labels, parsed.plan.members) == (
        [8],
        ["2000-04-04T00"],
        [0, 1],
    )
    assert parsed.plan.model.blanket_size == 4  # the tiny demo's denoiser, built by the workflow
