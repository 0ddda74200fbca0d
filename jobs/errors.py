"""The project's own error hierarchy; library errors are translated at the boundary."""


class BatchTranslateError(Exception):
    """Base class for every error raised by batch-translate."""


class BrokerUnavailable(BatchTranslateError):
    """The message broker could not be reached or did not confirm a publish."""


class StoreUnavailable(BatchTranslateError):
    """The job store could not be reached."""


class IdempotencyConflict(BatchTranslateError):
    """An Idempotency-Key was reused with a different request body."""


class JobNotFound(BatchTranslateError):
    """No job with this id is visible to this client."""


class InvalidTransition(BatchTranslateError):
    """The job is not in a state that allows the requested change (e.g. cancelling a finished job)."""


class CallbackUrlRefused(BatchTranslateError):
    """A callback URL points somewhere the SSRF policy does not allow."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"callback_url {url!r} refused: {reason}")
        self.url = url
        self.reason = reason
