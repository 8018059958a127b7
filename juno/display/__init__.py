"""The display stage's parts: the live view, session files, subtitles and latency."""
