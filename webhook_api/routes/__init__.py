"""Every router of the API, assembled in one place."""

from fastapi import APIRouter

from webhook_api.routes import corpus, deliveries, health, jobs, models

ROUTERS: list[APIRouter] = [jobs.router, corpus.router, deliveries.router, models.router, health.router]
