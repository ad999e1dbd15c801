"""The `reeltrace` command line."""
