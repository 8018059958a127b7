"""The transcribe process (built in the runtime issue)."""
