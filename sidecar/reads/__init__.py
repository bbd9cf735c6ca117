"""Read logic: resumable sessions, unary retries; later the tail cache and shared sessions."""

from sidecar.reads.plan import ResumePlan
from sidecar.reads.reader import StreamReader
from sidecar.reads.session import SessionEvent, SessionInterrupted

__all__ = ["ResumePlan", "SessionEvent", "SessionInterrupted", "StreamReader"]
