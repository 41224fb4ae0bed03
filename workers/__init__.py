"""The Celery application: thin tasks over autoresearch's services, routed to queues per resource."""
