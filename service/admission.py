"""Admission control: at most `limit` classification requests in progress per entry worker, HTTP and gRPC
together; the next one is refused at once (503 with Retry-After, gRPC UNAVAILABLE) instead of queueing.

It bounds what a worker holds (each request up to AUDIOCLF_MAX_UPLOAD_BYTES of body plus its decoded audio) and
keeps answers fast past capacity. Requests count from the moment they arrive, so slow uploads count too. All users
run on the worker's one event loop, so a plain counter suffices.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from service.errors import RETRY_AFTER_S, RequestError


class Admission:
    def __init__(self, limit: int):
        self.limit = limit
        self.active = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for the duration of the block; RequestError('overloaded') when none is free."""
        if self.active >= self.limit:
            raise RequestError(
                "overloaded",
                f"this worker is at its limit of {self.limit} requests in progress; retry in {RETRY_AFTER_S} s",
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
