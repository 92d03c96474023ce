"""The single blankets of the composition-fidelity check: where they start, how they are seeded."""

import dataclasses

from skyquilt.jobs.composition_fidelity import SINGLE_STREAM, single_blanket_requests
from skyquilt.models.config import ModelConfig
from skyquilt.sampling.request import RunSettings
from skyquilt.sampling.seeding import stream_seed

MODEL = ModelConfig((2, 4, 8), 4, 1, "cosine", 0.01, 80.0, "float32", 4, "blanket_net")
SETTINGS = RunSettings("model", "best", "lms", {"order": 3}, 4, "float32", 2, "symmetric", 7)


def test_single_blankets_start_where_each_composed_member_s_blankets_start():
    """T = 10, K = 4, O = 2: padded to 10, blankets from states 0, 2, 4, 6."""
    requests = single_blanket_requests(
        SETTINGS, MODEL, 10, ["2000-04-04T00", "2000-04-20T12"], [0, 1]
    )
    starts = [request.start_date for request in requests]
    first = ["2000-04-04T00", "2000-04-04T02", "2000-04-04T04", "2000-04-04T06"]
    second = ["2000-04-20T12", "2000-04-20T14", "2000-04-20T16", "2000-04-20T18"]
    assert starts == 2 * first + 2 * second
    assert {request.trajectory_size for request in requests} == {MODEL.blanket_size}
    assert [request.member for request in requests] == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4


def test_single_blankets_share_the_run_s_sampling_but_draw_their_own_noise():
    requests = single_blanket_requests(SETTINGS, MODEL, 10, ["2000-04-04T00"], [0, 1])
    seed = stream_seed(SETTINGS.seed, SINGLE_STREAM)
    assert {request.settings for request in requests} == {dataclasses.replace(SETTINGS, seed=seed)}
    assert seed != SETTINGS.seed
    assert len({request.seed for request in requests}) == len(requests)
    composed = SETTINGS.member(10, "2000-04-04T00", 0).seed
    assert composed not in {request.seed for request in requests}
