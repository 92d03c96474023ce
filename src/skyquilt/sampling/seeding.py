"""Per-member seeds: every ensemble member's noise is a pure function of its identity."""

import hashlib


def member_seed(seed: int, trajectory_size: int, start_date: str, member: int) -> int:
    """A 63-bit seed derived from (config seed, T, start date, member).

    A hash rather than arithmetic so that neighbouring members or dates never share streams.
    """
    key = f"{seed}|{trajectory_size}|{start_date}|{member}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for a purpose `stream` of a run with config seed `seed`, independent of
    the members' own (the single blankets of the composition-fidelity check use one)."""
    key = f"{seed}|{stream}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1
