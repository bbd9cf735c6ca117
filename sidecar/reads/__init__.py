"""Read logic: resumable sessions (`plan.py`, `session.py`), unary retries (`reader.py`), the tail
cache (`tails.py`), single flight (`coalesce.py`), shared live sessions (`hub.py`) and the history
cache with shared replays (`history.py`, `replay.py`)."""

from sidecar.reads.plan import ResumePlan
from sidecar.reads.reader import StreamReader
from sidecar.reads.session import SessionEvent, SessionInterrupted

__all__ = ["ResumePlan", "SessionEvent", "SessionInterrupted", "StreamReader"]
