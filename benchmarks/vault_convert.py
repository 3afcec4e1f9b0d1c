"""OG-MARL Vault -> episode store conversion: throughput and peak memory.

Generates a SMAC-3m-shaped Vault of 1,000,000 transitions (written with marl-augment's exporter
in OG-MARL's layout: gzip-compressed Zarr v2 leaves in one OCDBT store), then converts it in a
fresh subprocess and reports transitions per second and the subprocess's peak RSS.

    python benchmarks/vault_convert.py [--transitions 1000000] [--keep DIR]

Targets (issue 3): >= 200,000 transitions/s, peak RSS < 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from marl_augment.adapters.ogmarl_vault import export_vault
from marl_augment.config import machine_summary
from marl_augment.data.dataset import StoreWriter
from marl_augment.data.synthetic import smac_like_episodes, smac_like_spec

CHILD = """
import sys, time, warnings
warnings.simplefilter("ignore")
from marl_augment import adapters
t0 = time.perf_counter()
ds = adapters.convert("ogmarl-vault", sys.argv[1], sys.argv[2])
dt = time.perf_counter() - t0
print(ds.num_transitions, len(ds), dt)
"""


def make_vault(root: Path, transitions: int) -> Path:
    store = root / "gen.zarr"
    with StoreWriter(store, smac_like_spec(3)) as w:
        total = 0
        for cols, lengths, won in smac_like_episodes(10**9, seed=0, batch=2048):
            w.append_episodes(cols, lengths, won=won.tolist())
            total += int(lengths.sum())
            if total >= transitions:
                break
    t0 = time.perf_counter()
    export_vault(w.result, root / "3m.vlt", uid="Medium")
    print(
        f"generated a {total:,}-transition Vault in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    shutil.rmtree(store)
    return root / "3m.vlt" / "Medium"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transitions", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="reuse / keep the generated Vault in this folder")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="marl-augment-vault-bench-"))
    try:
        uid_dir = root / "3m.vlt" / "Medium"
        if not uid_dir.exists():
            root.mkdir(parents=True, exist_ok=True)
            make_vault(root, args.transitions)
        vault_mb = sum(f.stat().st_size for f in uid_dir.rglob("*") if f.is_file()) / 2**20
        out = root / "converted.zarr"
        shutil.rmtree(out, ignore_errors=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        p = subprocess.run(
            [sys.executable, "-c", CHILD, str(uid_dir), str(out)],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - t0
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        rows, episodes, convert_s = p.stdout.split()
        rows, convert_s = int(rows), float(convert_s)
        res = {
            "machine": machine_summary(),
            "transitions": rows,
            "episodes": int(episodes),
            "vault_MiB": round(vault_mb, 1),
            "store_MiB": round(
                sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20, 1
            ),
            "convert_s": round(convert_s, 2),
            "transitions_per_s": round(rows / convert_s),
            "process_wall_s": round(wall, 2),
            "peak_rss_MiB": round(max(peak_kib, before) / 1024, 1),
        }
        res["targets"] = {
            ">= 200,000 transitions/s": res["transitions_per_s"] >= 200_000,
            "peak RSS < 1.5 GB": res["peak_rss_MiB"] * 2**20 < 1.5e9,
        }
        print(json.dumps(res, indent=2))
        if args.json:
            args.json.write_text(json.dumps(res, indent=2))
        sys.exit(0 if all(res["targets"].values()) else 1)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
