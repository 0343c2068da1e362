"""Moonshine v2 ("Moonshine Streaming"): sliding-window encoder computed incrementally."""
