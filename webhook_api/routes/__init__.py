"""Every router of the API, assembled in one place."""

from fastapi import APIRouter

from webhook_api.routes import corpus, health, jobs, models

ROUTERS: list[APIRouter] = [jobs.router, corpus.router, models.router, health.router]
