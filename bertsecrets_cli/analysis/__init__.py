"""Pure functions over arrays: no CLI, no HDF5, no printing."""
