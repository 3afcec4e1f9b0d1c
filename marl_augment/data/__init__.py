"""The episode store and the dataset API."""

from .dataset import Dataset, Episode, StoreWriter, concat, make_provenance_entry
from .schema import SCHEMA_VERSION, Spec
from .store import read_store

__all__ = [
    "SCHEMA_VERSION",
    "Dataset",
    "Episode",
    "Spec",
    "StoreWriter",
    "concat",
    "make_provenance_entry",
    "read_store",
]
