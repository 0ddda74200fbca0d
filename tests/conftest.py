"""Fixtures live in ``tests/plugins``: one module per real part (services, models, receivers...)."""

pytest_plugins = [
    "tests.plugins.services",
    "tests.plugins.models",
    "tests.plugins.receiver",
    "tests.plugins.workers",
    "tests.plugins.mlflow_server",
]
