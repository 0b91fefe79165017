"""The virtual DMX universe: recording and reading `ola_recorder` show files."""

from .record import ShowRecorder, read_show

__all__ = ["ShowRecorder", "read_show"]
