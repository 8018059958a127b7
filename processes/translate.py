"""The translate process (built in the runtime issue)."""
