import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def one_thread():
    """Unit tests are tiny and overhead-bound: a second thread only adds sync cost (and the
    machine has two cores, one of them often busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def level1_dir(tmp_path_factory):
    """Four synthetic 256² level-1 frames, one of them QUALITY-flagged."""
    from solargen.acquire.synthetic import write_synthetic_frame

    d = tmp_path_factory.mktemp("lev1")
    for i in range(4):
        write_synthetic_frame(d / f"aia_lev1_193a_{i:06d}.fits", seed=100 + i,
                              date_obs=f"2011-01-01T{2 * i:02d}:00:00.000", native_size=256,
                              exptime=2.0, quality=0x100 if i == 3 else 0)
    return d
