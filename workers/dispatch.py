"""How a controller reaches the workers: tasks sent by name (the controller never imports the tasks), and
a look into the broker to see which trials and ideas it still holds."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import redis
from celery import Celery

IMPLEMENT_TASK = "autoresearch.implement_idea"
RUN_TASK = "autoresearch.run_trial"
# kombu's Redis transport keeps a queue's messages in the list NAME, and in NAME + separator + step when
# messages carry priorities.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
_UNACKED = "unacked"  # kombu's hash of the messages workers have taken and not yet acknowledged


class CeleryDispatcher:
    def __init__(self, app: Celery, queue_of: Callable[[int], str]) -> None:
        self.app = app
        self.queue_of = queue_of  # trial id -> "cpu" or "gpu"
        self.redis = redis.Redis.from_url(app.conf.broker_url)

    def implement(self, idea_id: int) -> None:
        self.app.send_task(IMPLEMENT_TASK, args=[idea_id], queue="implement")

    def run(self, trial_id: int) -> None:
        self.app.send_task(RUN_TASK, args=[trial_id], queue=self.queue_of(trial_id))

    def queued_trials(self) -> set[int] | None:
        return self._held(RUN_TASK, ("cpu", "gpu"))

    def queued_ideas(self) -> set[int] | None:
        return self._held(IMPLEMENT_TASK, ("implement",))

    def _held(self, task: str, queues: tuple[str, ...]) -> set[int] | None:
        """The first argument of every `task` message waiting in `queues` or taken by a worker; None when
        the broker cannot be read (then nothing is queued again on a guess)."""
        try:
            return {args[0] for name, args in self._messages(queues) if name == task and args}
        except (redis.RedisError, ValueError, KeyError, TypeError):
            return None

    def _messages(self, queues: tuple[str, ...]) -> Iterator[tuple[str, list[Any]]]:
        for queue in queues:
            for key in (queue, *(f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS)):
                for raw in self.redis.lrange(key, 0, -1):
                    yield _task_of(json.loads(raw))
        for raw in self.redis.hvals(_UNACKED):
            message, _exchange, routing_key = json.loads(raw)
            if routing_key in queues:
                yield _task_of(message)


def _task_of(message: dict[str, Any]) -> tuple[str, list[Any]]:
    """(task name, positional args) of a Celery protocol-2 message."""
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    args, _kwargs, _embed = json.loads(body)
    return message["headers"]["task"], list(args)
