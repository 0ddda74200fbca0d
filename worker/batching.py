"""Token-budget packing: segments of many jobs of one pair go into one translation step.

Jobs wait in FIFO order. A step takes segments from the oldest job onwards, from every job whose decoding options
match the oldest one's, until ``max_batch_tokens`` source tokens are reached. A job larger than the budget spans
several steps; a job is finished when its last segment is translated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from jobs.schemas import JobMessage, TranslationOptions


@dataclass(eq=False)
class PendingJob:
    """A job taken from the queue and not yet settled."""

    delivery_tag: int
    message: JobMessage
    delivery_count: int  #: how often the broker delivered it before (0 on the first delivery)
    tokens: list[list[str]]
    received_at: float = field(default_factory=time.monotonic)
    translations: list[str | None] = field(init=False)
    next_segment: int = 0  #: first segment not yet handed to a step
    done: int = 0
    checked: bool = False  #: its status was read from the store after it arrived (see the consumer)

    def __post_init__(self) -> None:
        self.translations = [None] * len(self.tokens)

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def options(self) -> TranslationOptions:
        return self.message.options

    @property
    def started(self) -> bool:
        return self.next_segment > 0

    @property
    def finished(self) -> bool:
        return self.done == len(self.tokens)

    @property
    def remaining_tokens(self) -> int:
        return sum(len(t) for t in self.tokens[self.next_segment :])


@dataclass
class Step:
    """One call to the translator: the segments and where each result goes."""

    options: TranslationOptions
    sources: list[list[str]] = field(default_factory=list)
    targets: list[tuple[PendingJob, int]] = field(default_factory=list)

    @property
    def jobs(self) -> list[PendingJob]:
        seen: dict[int, PendingJob] = {}
        for job, _ in self.targets:
            seen.setdefault(id(job), job)
        return list(seen.values())

    @property
    def tokens(self) -> int:
        return sum(len(s) for s in self.sources)


class Packer:
    """Holds the jobs a worker has taken and cuts them into token-budget steps."""

    def __init__(self, max_batch_tokens: int) -> None:
        self.max_batch_tokens = max_batch_tokens
        self._jobs: list[PendingJob] = []

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[PendingJob]:
        return iter(list(self._jobs))

    def add(self, job: PendingJob) -> None:
        self._jobs.append(job)

    def remove(self, job: PendingJob) -> None:
        self._jobs.remove(job)

    def waiting_tokens(self) -> int:
        return sum(job.remaining_tokens for job in self._jobs)

    def oldest_received_at(self) -> float | None:
        waiting = [job.received_at for job in self._jobs if job.next_segment < len(job.tokens)]
        return min(waiting) if waiting else None

    def next_step(self) -> Step | None:
        """The next step, or None when nothing waits. Always at least one segment, even above the budget."""
        waiting = [job for job in self._jobs if job.next_segment < len(job.tokens)]
        if not waiting:
            return None
        step = Step(options=waiting[0].options)
        budget = self.max_batch_tokens
        for job in waiting:
            if job.options != step.options:
                continue
            while job.next_segment < len(job.tokens):
                tokens = job.tokens[job.next_segment]
                if step.sources and step.tokens + len(tokens) > budget:
                    return step
                step.sources.append(tokens)
                step.targets.append((job, job.next_segment))
                job.next_segment += 1
        return step

    def take_finished(self) -> list[PendingJob]:
        finished = [job for job in self._jobs if job.finished]
        for job in finished:
            self._jobs.remove(job)
        return finished
