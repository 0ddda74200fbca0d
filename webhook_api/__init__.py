"""The HTTP API: submit, inspect, cancel and fetch translation jobs."""
