"""The only code that knows the HDF5 layout of a bertsecrets store (spec: docs/store.md)."""

from bertsecrets_cli.store.reader import Store, open_store
from bertsecrets_cli.store.writer import AttentionStoreWriter, StoreWriter

__all__ = ["Store", "open_store", "StoreWriter", "AttentionStoreWriter"]
