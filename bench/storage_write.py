"""What one durable flush costs: raftchat's Storage.save (one record appended to its segment
log and fdatasynced, with the encoding and checks around it) against the floor of a bare
os.write + os.fdatasync of the same bytes' worth, in the same run, on the same disk.

    python -m bench.storage_write                     # 300 flushes of 1 and of 32 entries
    python -m bench.storage_write --flushes 1000 --dir /var/tmp
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from raftchat.raft.messages import Entry, HardState
from raftchat.storage import Storage


def _storage(root: Path, flushes: int, batch: int) -> list[float]:
    st = Storage.open(root / "storage", "bench", "n1")
    times, index = [], 0
    try:
        for _ in range(flushes):
            entries = [Entry(index + i + 1, 1, b"x" * 120) for i in range(batch)]
            index += batch
            started = time.perf_counter()
            st.save(HardState(1, "n1", index), entries)
            times.append(time.perf_counter() - started)
    finally:
        st.close()
    return times


def _append_only(root: Path, flushes: int, batch: int) -> list[float]:
    fd = os.open(root / "log.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    times = []
    try:
        for n in range(flushes):
            record = b"".join(n.to_bytes(8, "big") + b"x" * 120 for _ in range(batch))
            started = time.perf_counter()
            os.write(fd, record)
            os.fdatasync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flushes", type=int, default=300)
    parser.add_argument("--dir", default=None, help="where to write (default: a new folder under /tmp)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="raftchat-storage-", dir=args.dir))
    try:
        print(f"{args.flushes} flushes each, under {root}; median / p99 per flush")
        for batch in (1, 32):
            # Interleave the two so a burst of load from elsewhere hits both alike.
            sq, ao = [], []
            for rep in range(3):
                sq += _storage(root / f"s{batch}-{rep}", args.flushes // 3, batch)
                (root / f"a{batch}").mkdir(exist_ok=True)
                ao += _append_only(root / f"a{batch}", args.flushes // 3, batch)
            for name, t in (("Storage.save", sq), ("append + fdatasync", ao)):
                t.sort()
                print(
                    f"  {batch:2d} entries  {name:22s} median {statistics.median(t) * 1000:6.2f} ms"
                    f"  p99 {t[int(len(t) * 0.99) - 1] * 1000:6.2f} ms"
                )
            ratio = statistics.median(sq) / statistics.median(ao)
            print(f"  {batch:2d} entries  ratio Storage.save / floor (medians) {ratio:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
