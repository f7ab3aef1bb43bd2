"""The autouse guard in tests/conftest.py: a test that leaks global torch state fails, the next one is clean."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")

LEAKY_TESTS = '''
import random

import numpy as np
import torch


def test_leaks_default_dtype():
    torch.set_default_dtype(torch.float64)


def test_leaks_threads():
    torch.set_num_threads(torch.get_num_threads() + 1)


def test_leaks_deterministic_algorithms():
    torch.use_deterministic_algorithms(True, warn_only=True)


def test_restores_what_it_changes():
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        assert torch.get_num_threads() == threads + 1
    finally:
        torch.set_num_threads(threads)


def test_consumes_the_global_rngs():
    torch.manual_seed(5), random.seed(5), np.random.seed(5)


def test_runs_last_on_a_clean_state():
    assert torch.get_default_dtype() == torch.float32
    assert not torch.are_deterministic_algorithms_enabled()
'''


def test_a_test_that_leaks_global_torch_state_fails(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.read_text())  # the real guard, not a copy of its logic
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    # A subprocess: torch registers operator libraries once per process, so pytester's in-process module
    # snapshot cannot undo an inner run that imported torch._inductor. File order: the last test runs last.
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, errors=3)
    result.stdout.fnmatch_lines([
        "*test_leaks_default_dtype changed global torch state*default dtype torch.float32 -> torch.float64*",
        "*test_leaks_threads changed global torch state*threads * -> *",
        "*test_leaks_deterministic_algorithms changed*deterministic algorithms False -> True; "
        "deterministic warn_only False -> True*",
    ])
    assert "test_restores_what_it_changes changed" not in result.stdout.str()
    assert "test_consumes_the_global_rngs changed" not in result.stdout.str()
