"""Trainer: runs the exercise sheet's experiments, registers models, moves the champion alias."""
