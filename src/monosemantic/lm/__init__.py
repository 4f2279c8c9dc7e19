"""The small language models trained here: a byte-level transformer and its MLP variants (roads 1 and 3)."""
