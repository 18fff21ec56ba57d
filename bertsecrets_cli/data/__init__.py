"""Data: the GLUE task registry, loaders for every supported source, shipped demo data."""
