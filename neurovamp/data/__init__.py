"""Data layer: modalities, the multi-animal container, pairing across animals, torch batches."""
