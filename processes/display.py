"""The display process (built in the runtime issue)."""
