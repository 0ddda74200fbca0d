"""Prometheus metrics of the translation worker."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SEGMENTS = Counter("bt_worker_segments_translated_total", "Segments translated", ["pair"])
TARGET_TOKENS = Counter("bt_worker_target_tokens_total", "Target tokens produced", ["pair"])
JOBS = Counter("bt_worker_jobs_total", "Jobs settled by outcome", ["pair", "outcome"])
STEP_SECONDS = Histogram(
    "bt_worker_step_seconds",
    "Wall time of one translation step",
    ["pair"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STEP_SEGMENTS = Histogram(
    "bt_worker_step_segments",
    "Segments packed into one translation step",
    ["pair"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
STEP_JOBS = Histogram(
    "bt_worker_step_jobs", "Jobs sharing one translation step", ["pair"], buckets=(1, 2, 4, 8, 16, 32, 64)
)
MODEL_INFO = Gauge("bt_worker_model_info", "Model version being served (value 1)", ["pair", "name", "version"])
