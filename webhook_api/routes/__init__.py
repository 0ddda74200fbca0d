"""Every router of the API, assembled in one place."""

from fastapi import APIRouter

from webhook_api.routes import health, jobs, models

ROUTERS: list[APIRouter] = [jobs.router, models.router, health.router]
