"""Monitor: scheduled evaluation of champion models, drift detection, alerts and dashboard."""
