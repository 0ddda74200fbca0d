"""Fixtures for RabbitMQ, PostgreSQL and SQLite (owned by the API/worker work)."""
