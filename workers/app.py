"""The Celery app. Tasks take ids, never objects, and are idempotent, so late acknowledgement is safe:
a message redelivered after a worker died finds its trial already claimed (or expired) in the database,
which alone decides who owns a trial."""

from __future__ import annotations

from celery import Celery
from kombu.entity import Queue

from autoresearch.settings import load_settings

QUEUES = ("implement", "cpu", "gpu")  # LLM calls; CPU trials; GPU trials


def make_app() -> Celery:
    settings = load_settings()
    app = Celery("autoresearch", broker=settings.broker_url, include=["workers.tasks"])
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="cpu",
        task_acks_late=True,  # a task is acknowledged when it ends, so a dead worker's task comes back
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker takes one trial at a time, never a backlog
        task_ignore_result=True,  # results live in the database
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app


app = make_app()
