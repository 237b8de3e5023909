"""The load's Bloom filter: never a false negative, rarely a false positive."""

from __future__ import annotations

import pytest

from service.ingest.keyfilter import KeyFilter


def test_added_keys_are_always_found_and_others_rarely() -> None:
    seen = KeyFilter(bits=1 << 20)
    added = [f"t:paper {n}" for n in range(20_000)]
    for key in added:
        seen.add(key)
    assert all(key in seen for key in added)
    false_positives = sum(f"t:other {n}" in seen for n in range(20_000))
    assert false_positives < 200  # about 0.2% expected at this fill
    assert 42 not in seen


def test_size_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        KeyFilter(bits=1000)
