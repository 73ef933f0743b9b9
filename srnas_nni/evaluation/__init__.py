"""Evaluation: MATLAB-compatible resizing, SR metrics, data, training and NNI evaluators."""
