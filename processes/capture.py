"""The capture process (built in the runtime issue)."""
