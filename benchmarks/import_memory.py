"""Importing a large archive streams it: the peak memory of importing an export whose replay buffer is
``--gb`` GB (default 1), measured in a fresh process, against the archive's size.

    python benchmarks/import_memory.py [--gb 1] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

IMPORT = """
import resource, sys, time
from skillbank.store.registry import Registry
start = time.perf_counter()
mapping = Registry(sys.argv[2]).import_(sys.argv[1], max_size=8 << 30)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - start, list(mapping.values())[0])
"""

BASELINE = "import resource, skillbank.store.registry; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def big_export(root: Path, gigabytes: float) -> Path:
    """An export archive of a tiny skill whose replay buffer is ``gigabytes`` of incompressible rows."""
    from skillbank import Registry
    from skillbank.algos.buffer import ReplayBuffer
    from tests.conftest import tiny_skill

    source = Registry(root / "source")
    ref = source.register(tiny_skill(), "big", replay=ReplayBuffer(10, 2, 2))
    rows = int(gigabytes * 1e9 / (4 * 8))
    path = root / "replay.h5"
    with h5py.File(path, "w") as f:  # written in chunks, so that making it does not need the memory either
        rng = np.random.default_rng(0)
        for name, width in (("observations", 2), ("actions", 2), ("rewards", 0), ("next_observations", 2),
                            ("terminals", 0)):  # fmt: skip
            dataset = f.create_dataset(name, shape=(rows, width) if width else (rows,), dtype=np.float32)
            for start in range(0, rows, 1 << 22):
                n = min(1 << 22, rows - start)
                dataset[start : start + n] = rng.random((n, width) if width else n, dtype=np.float32)
        f.attrs["obs_dim"], f.attrs["act_dim"] = 2, 2
    # Swap the registered replay for the big one, through the export's own format (manifest and objects).
    archive = root / "big.tar.gz"
    source.export(ref, archive)

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("skillbank-export.json").read())
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.name != "skillbank-export.json"}
    entry = manifest["versions"][0]
    entry["files"]["replay.h5"] = {"sha256": digest.hexdigest(), "size": path.stat().st_size}
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("skillbank-export.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(path, arcname=f"objects/{digest.hexdigest()}")
    return archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=1.0, help="size of the replay buffer in the archive (GB)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        archive = big_export(root, args.gb)
        made = time.perf_counter() - start
        baseline = int(subprocess.run([sys.executable, "-c", BASELINE], capture_output=True, text=True,
                                      check=True).stdout)  # fmt: skip
        out = subprocess.run([sys.executable, "-c", IMPORT, str(archive), str(root / "target")], capture_output=True,
                             text=True, check=True).stdout.split()  # fmt: skip
        result = {
            "replay_gb": args.gb,
            "archive_bytes": archive.stat().st_size,
            "peak_rss_gb": round(int(out[0]) * 1024 / 1e9, 3),
            "interpreter_rss_gb": round(baseline * 1024 / 1e9, 3),
            "import_s": round(float(out[1]), 1),
            "making_the_archive_s": round(made, 1),
        }
    print(json.dumps(result, indent=2) if args.json else result)


if __name__ == "__main__":
    main()
