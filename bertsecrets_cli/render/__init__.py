"""Everything a person sees: tables, progress, terminal heatmaps, figure files."""
