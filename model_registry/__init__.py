"""What the trainer and the monitor both do to the MLflow model registry before and when an alias
moves: the checks a version must pass (``checks``) and the recorded alias moves (``aliases``).

Shared code lives here so that neither service imports the other's package.
"""
