"""Callback deliveries: one durable row per callback, retried with backoff by any worker."""
