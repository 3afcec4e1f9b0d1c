"""Episode-store I/O: size and read throughput against raw .npy, and the torch sequence view.

Generates a SMAC-3m-shaped dataset (3 agents, obs 30, state 48, 9 actions) of 200,000
transitions, writes it as an episode store and as uncompressed .npy files, and measures:

- size on disk (store vs raw .npy), target <= 0.5x;
- reading everything into numpy: store (raw decode, and with full validation + fingerprint)
  vs np.load of the .npy files, target >= 0.5x the .npy throughput;
- ``ds.torch(view="sequences")`` windows of length 20 per second, target >= 20,000/s.

Both read paths run in the same process on the same files, warm (the OS page cache holds both,
as it would for a dataset read repeatedly during training); a cold-cache number is not
measured here (no root-free way to drop caches). Usage::

    python benchmarks/store_io.py [--transitions 200000] [--repeat 5] [--codecs]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import marl_augment as ma
from marl_augment.config import machine_summary
from marl_augment.data import chunks as store_mod
from marl_augment.data.chunks import RowReader, open_group
from marl_augment.data.dataset import StoreWriter
from marl_augment.data.synthetic import smac_like_episodes, smac_like_spec


def dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def read_store_raw(path: Path) -> dict[str, np.ndarray]:
    """Every array of the store through marl-augment's reader (no validation)."""
    g = open_group(path)
    names = list(g.array_keys())
    return RowReader(path, g, names).read()


def read_store_zarr(path: Path) -> dict[str, np.ndarray]:
    """Every array through zarr-python (for reference)."""
    g = open_group(path)
    return {n: g[n][:] for n in g.array_keys()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transitions", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--codecs", action="store_true", help="also compare codec / chunk choices")
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="marl-augment-bench-"))
    try:
        spec = smac_like_spec(3)
        # generate episodes until the transition budget is met, then cut to whole episodes
        cols_parts, lengths_parts, won_parts, total = [], [], [], 0
        for cols, lengths, won in smac_like_episodes(10**9, seed=0, skill=0.5, batch=512):
            cols_parts.append(cols)
            lengths_parts.append(lengths)
            won_parts.append(won)
            total += int(lengths.sum())
            if total >= args.transitions:
                break
        cols = {k: np.concatenate([c[k] for c in cols_parts]) for k in cols_parts[0]}
        lengths = np.concatenate(lengths_parts)
        won = np.concatenate(won_parts)
        n_rows = int(lengths.sum())

        def write(
            path: Path, chunk_bytes: int = store_mod.DEFAULT_CHUNK_BYTES, compression: str = "lz4"
        ):
            t0 = time.perf_counter()
            with StoreWriter(
                path, spec, chunk_bytes=chunk_bytes, compression=compression, overwrite=True
            ) as w:
                step = 4096
                offs = np.concatenate([[0], np.cumsum(lengths)])
                for e0 in range(0, len(lengths), step):
                    e1 = min(len(lengths), e0 + step)
                    lo, hi = offs[e0], offs[e1]
                    w.append_episodes(
                        {k: v[lo:hi] for k, v in cols.items()},
                        lengths[e0:e1],
                        won=won[e0:e1].tolist(),
                    )
            return time.perf_counter() - t0

        store_path = tmp / "3m.zarr"
        write_s = write(store_path)
        npy_dir = tmp / "npy"
        npy_dir.mkdir()
        raw = read_store_raw(store_path)
        for k, v in raw.items():
            np.save(npy_dir / f"{k}.npy", v)
        raw_bytes = sum(v.nbytes for v in raw.values())
        store_bytes = dir_size(store_path)
        npy_bytes = dir_size(npy_dir)

        def read_npy():
            return {f.stem: np.load(f) for f in npy_dir.glob("*.npy")}

        read_npy(), read_store_raw(store_path)  # warm both
        t_npy = best_of(read_npy, args.repeat)
        t_store = best_of(lambda: read_store_raw(store_path), args.repeat)
        t_zarr = best_of(lambda: read_store_zarr(store_path), args.repeat)
        t_load = best_of(lambda: ma.load(store_path), args.repeat)
        t_load_nv = best_of(lambda: ma.load(store_path, validate=False), args.repeat)

        ds = ma.load(store_path)
        loader = ds.torch(view="sequences", batch_size=32, length=20, period=10, seed=0)
        next(iter(loader))  # warm-up: imports torch, builds the window index
        n_windows = 0
        t0 = time.perf_counter()
        for _ in range(3):  # three epochs, each reshuffled
            for b in loader:
                n_windows += b["mask"].shape[0]
        t_seq = time.perf_counter() - t0

        mb = raw_bytes / 2**20
        res = {
            "machine": machine_summary(),
            "transitions": n_rows,
            "episodes": int(len(lengths)),
            "raw_MiB": round(mb, 1),
            "store_MiB": round(store_bytes / 2**20, 2),
            "npy_MiB": round(npy_bytes / 2**20, 1),
            "size_ratio_store_vs_raw": round(store_bytes / raw_bytes, 3),
            "write_s": round(write_s, 3),
            "read_npy_MiB_s": round(mb / t_npy, 1),
            "read_store_MiB_s": round(mb / t_store, 1),
            "read_ratio_store_vs_npy": round(t_npy / t_store, 3),
            "read_zarr_python_MiB_s": round(mb / t_zarr, 1),
            "load_validated_s": round(t_load, 3),
            "load_unvalidated_s": round(t_load_nv, 3),
            "load_validated_ratio_vs_npy": round(t_npy / t_load, 3),
            "sequence_windows": n_windows,
            "sequence_windows_per_s": round(n_windows / t_seq),
            "chunk_rows": int(open_group(store_path)["obs"].chunks[0]),
        }
        targets = {
            "size <= 0.5x raw": res["size_ratio_store_vs_raw"] <= 0.5,
            "read >= 0.5x npy": res["read_ratio_store_vs_npy"] >= 0.5,
            "sequences >= 20000/s": res["sequence_windows_per_s"] >= 20_000,
        }
        res["targets"] = targets
        if args.codecs:
            res["codecs"] = compare_codecs(tmp, raw_bytes, args.repeat, write)
        print(json.dumps(res, indent=2))
        if args.json:
            args.json.write_text(json.dumps(res, indent=2))
        sys.exit(0 if all(targets.values()) else 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare_codecs(tmp: Path, raw_bytes: int, repeat: int, write) -> list[dict]:
    """Size and read speed for each compression and chunk size (how the defaults were chosen)."""
    out = []
    for compression in store_mod.COMPRESSIONS:
        for chunk_bytes in (1 << 20, 1 << 22, 1 << 23, 1 << 24):
            p = tmp / f"{compression}-{chunk_bytes}.zarr"
            w = write(p, chunk_bytes, compression)
            t = best_of(lambda: read_store_raw(p), repeat)
            tz = best_of(lambda: read_store_zarr(p), repeat)
            out.append(
                {
                    "compression": compression,
                    "chunk_MiB": chunk_bytes / 2**20,
                    "size_ratio": round(dir_size(p) / raw_bytes, 3),
                    "read_MiB_s": round(raw_bytes / 2**20 / t, 1),
                    "read_zarr_python_MiB_s": round(raw_bytes / 2**20 / tz, 1),
                    "write_s": round(w, 2),
                }
            )
            shutil.rmtree(p)
    return out


if __name__ == "__main__":
    main()
