"""Runtime layer: dispatch of step executions through Django's Tasks framework, timers, recovery."""
