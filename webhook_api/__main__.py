"""``python -m webhook_api``: run the API with uvicorn, settings from ``BT_*`` environment variables."""

from __future__ import annotations

import logging
import sys

import uvicorn

from jobs.logging_setup import configure_logging
from webhook_api.main import create_app
from webhook_api.settings import ApiSettings


def main() -> None:
    configure_logging()
    settings = ApiSettings()
    try:
        app = create_app(settings)
    except ValueError as exc:
        logging.getLogger("webhook_api").error("%s", exc)
        sys.exit(2)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
