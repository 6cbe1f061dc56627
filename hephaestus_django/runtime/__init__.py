"""Runtime layer: the database runner (``dispatch``: step executions dispatched through Django's
Tasks framework), its tasks, the worker loop and its jobs (timers, recovery, throttled runs,
schedules), the heartbeat of claims, step threads' connections and django-tasks-db task rows."""
