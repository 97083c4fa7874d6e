"""Tracking service: the MLflow server entrypoint shared by the container and local mode."""
