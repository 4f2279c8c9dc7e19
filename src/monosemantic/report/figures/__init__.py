"""Figures: pure functions from results to matplotlib figures. They train nothing."""
