"""The allocator setting of the feature and sampling steps (`solargen.memory`): freed large
blocks are reused from the heap, not unmapped and faulted in again at the next allocation."""

import subprocess
import sys

import pytest

_FAULTS = """
import resource, sys
import numpy as np
from solargen.memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        a = np.ones(8 * 1024 ** 2)  # 64 MB: above glibc's largest mmap threshold (32 MB)
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults()  # the first allocation maps its pages either way
print(kept, faults())
"""


def _faults(mode: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True).stdout
    kept, n = out.split()
    return kept == "True", int(n)


def test_freed_blocks_are_reused_without_page_faults():
    kept, with_setting = _faults("keep")
    _, without = _faults("default")
    if not kept:
        pytest.skip("not glibc: keep_freed_memory is a no-op here")
    if without < 1000:
        pytest.skip(f"only {without} page faults without the setting (huge pages?): nothing to compare")
    # 5 × 64 MB mapped afresh fault every page in again (thousands, 4 KiB or NumPy's 2 MiB pages);
    # reused from the heap, almost none.
    assert with_setting < without / 20, (with_setting, without)
