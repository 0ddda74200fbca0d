"""Fixtures that train and hand out real tiny models."""
