"""The streaming transcriber: Whisper windows plus a commit policy, fed audio and time."""

from juno.transcriber.words import Word

__all__ = ["Word"]
