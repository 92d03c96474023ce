"""Per-member seeds: every ensemble member's noise is a pure function of its identity."""

import hashlib


def member_seed(seed: int, trajectory_size: int, start_date: str, member: int) -> int:
    """A 63-bit seed derived from (config seed, T, start date, member).

    A hash rather than arithmetic so that neighbouring members or dates never share streams.
    """
    key = f"{seed}|{trajectory_size}|{start_date}|{member}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1
