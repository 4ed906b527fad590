"""The robot: the polite HTTP layer and browser, one sweep of targets, the `run` daemon,
leases, follow-ups and the runtime that wires them once from settings."""
