"""Benchmarks (word error rate, real-time factor, commit lag, memory) and the forced alignment
they time words with. Imported only by ``dictation bench`` and ``scripts/``, never by the app."""
