"""Live listeners of a run's events: the console lines, events.jsonl, metrics.csv and the dashboard pipe."""
