"""Inference on trained models: predictions with the training transforms, and per-layer probes."""
