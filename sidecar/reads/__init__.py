"""Read logic: resumable sessions (`plan.py`, `session.py`), unary retries (`reader.py`), the tail
cache (`tails.py`), single flight (`coalesce.py`), shared live sessions (`hub.py`), the history
cache with shared replays (`history.py`, `replay.py`), and what each app is sent (`delivery.py`)."""

from sidecar.reads.delivery import Delivery, deliveries, read_answer
from sidecar.reads.plan import ResumePlan
from sidecar.reads.reader import StreamReader
from sidecar.reads.session import SessionEvent, SessionInterrupted

__all__ = ["Delivery", "ResumePlan", "SessionEvent", "SessionInterrupted", "StreamReader", "deliveries", "read_answer"]
