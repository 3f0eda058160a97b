"""Data: vocabularies, synthetic tasks with gold alignments, and the batching pipeline."""
