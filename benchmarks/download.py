"""Client-side cost of one verified level-1 download: a 4096² RICE FITS from the fake JSOC on loopback.

Loopback makes the network free, so this measures what our side adds per file (streaming, sha256,
FITS checksum verification, atomic rename) and the file size, the two numbers the README's
40K-frame estimate rests on. Run: PYTHONPATH=src:tests python benchmarks/download.py [n_frames]
Prints one final line of key=value pairs.
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakejsoc import FakeJsoc  # noqa: E402

from solargen.acquire.download import check_on_disk, fetch, verify_fits  # noqa: E402


def main(n: int = 3) -> None:
    with FakeJsoc(size=4096) as fake, tempfile.TemporaryDirectory() as d:
        names = [f"aia.lev1_euv_12s.20110101_{2 * i:02d}0000_TAI.193.image_lev1.fits" for i in range(n)]
        t0 = time.perf_counter()
        for name in names:  # render and compress the frames first (server side, not timed below)
            fake.file(f"/SUM1/D1/S00000/{name}")
        render = (time.perf_counter() - t0) / n
        sizes, fetch_s, verify_s, recheck_s = [], [], [], []
        for name in names:
            t = time.perf_counter()
            size, _ = fetch(f"{fake.url}SUM1/D1/S00000/{name}", Path(d) / name)
            fetch_s.append(time.perf_counter() - t)
            sizes.append(size)
            t = time.perf_counter()
            verify_fits(Path(d) / name)
            verify_s.append(time.perf_counter() - t)
            check_on_disk(Path(d) / name)  # first check: full verification, writes the sidecar
            t = time.perf_counter()
            check_on_disk(Path(d) / name)  # a re-run's check: sha256 against the sidecar
            recheck_s.append(time.perf_counter() - t)
    mib = sum(sizes) / n / 2**20
    best_fetch, best_verify = min(fetch_s), min(verify_s)
    print(f"frames={n} file_mib={mib:.2f} render_s={render:.2f} fetch_verify_s={best_fetch:.3f} "
          f"verify_only_s={best_verify:.3f} recheck_s={min(recheck_s):.3f} loopback_mib_per_s={mib / best_fetch:.0f} "
          f"disk_40k_gib={40000 * mib / 1024:.0f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
