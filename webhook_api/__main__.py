"""``python -m webhook_api``: run the API with uvicorn, settings from ``BT_*`` environment variables."""

from __future__ import annotations

import logging
import sys

import uvicorn

from jobs.events import EventAnnouncer
from jobs.logging_setup import configure_logging
from webhook_api.main import create_app
from webhook_api.settings import ApiSettings


def main() -> None:
    configure_logging()
    settings = ApiSettings()
    announcer = EventAnnouncer.from_settings(settings)  # cancel and redeliver enqueue event deliveries
    try:
        app = create_app(settings, announce=announcer.announce)
    except ValueError as exc:
        logging.getLogger("webhook_api").error("%s", exc)
        sys.exit(2)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    finally:
        announcer.close()


if __name__ == "__main__":
    main()
