"""API keys: issuing, hashing, verifying and scoping them."""
