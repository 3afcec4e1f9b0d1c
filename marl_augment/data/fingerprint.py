"""The content fingerprint of an episode store: SHA-256 over its arrays (and its spec), recorded
at write time and recomputed on every validated open."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Prefix of fingerprints that cover the spec as well as the arrays.
SPEC_FINGERPRINT = "sha256+spec:"


class Fingerprint:
    """Content hash of a store: one SHA-256 stream per array, combined in a fixed order.

    Streaming per array makes the result independent of how rows were split into blocks.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self._h = {n: hashlib.sha256() for n in names}

    def add(self, name: str) -> None:
        """Hash one more array (one decided on only at the end, like ``episode_won``)."""
        self._h.setdefault(name, hashlib.sha256())

    def update(self, name: str, arr: np.ndarray) -> None:
        a = np.ascontiguousarray(arr)
        if a.dtype.byteorder == ">":
            a = a.byteswap().view(a.dtype.newbyteorder("<"))
        self._h[name].update(memoryview(a).cast("B"))

    def hexdigest(
        self,
        shapes: Mapping[str, tuple[int, ...]],
        dtypes: Mapping[str, Any],
        spec: Mapping[str, Any] | None = None,
    ) -> str:
        """``sha256+spec:`` over the arrays and the spec (so an edited spec is caught too);
        ``sha256:`` over the arrays alone (stores written before the spec was covered)."""
        top = hashlib.sha256()
        for name in sorted(self._h):
            top.update(f"{name}|{np.dtype(dtypes[name]).str}|{tuple(shapes[name])}|".encode())
            top.update(self._h[name].digest())
        if spec is None:
            return "sha256:" + top.hexdigest()
        top.update(b"spec|" + json.dumps(spec, sort_keys=True, separators=(",", ":")).encode())
        return SPEC_FINGERPRINT + top.hexdigest()
