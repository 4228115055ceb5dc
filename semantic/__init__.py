"""Models that produce or consume semantic features (VLF-MSC and SemCLIP parts, metrics)."""
