"""The resume planner: what to ask upstream after a failure, given what was delivered."""

from sidecar.reads.plan import ResumePlan
from sidecar.types import ReadLimit, ReadQuery, SeqNum, StreamPosition, TailOffset, Timestamp


def test_nothing_delivered_asks_again_as_the_app_did() -> None:
    q = ReadQuery(TailOffset(10))
    assert ResumePlan(q).next_query(now=0.0) == q


def test_resumes_after_the_last_delivered_record_with_reduced_stops() -> None:
    plan = ResumePlan(ReadQuery(Timestamp(50), ReadLimit(count=100, bytes=10_000), until=900))
    plan.delivered(count=40, last_seq_num=139, metered_bytes=4000, now=1.0)
    assert plan.next_query(now=2.0) == ReadQuery(SeqNum(140), ReadLimit(count=60, bytes=6000), until=900)


def test_heartbeat_moves_the_resume_point_to_the_tail() -> None:
    plan = ResumePlan(ReadQuery(TailOffset(0)))
    plan.caught_up(StreamPosition(77, 1))
    assert plan.next_query(now=0.0) == ReadQuery(SeqNum(77))
    plan.delivered(count=3, last_seq_num=79, metered_bytes=0, now=0.0)
    plan.caught_up(StreamPosition(80, 2))
    assert plan.next_query(now=0.0) == ReadQuery(SeqNum(80))


def test_a_stale_heartbeat_never_moves_the_resume_point_back() -> None:
    plan = ResumePlan(ReadQuery(SeqNum(0)))
    plan.delivered(count=10, last_seq_num=9, metered_bytes=0, now=0.0)
    plan.caught_up(StreamPosition(5, 0))
    assert plan.next_query(now=0.0) == ReadQuery(SeqNum(10))


def test_complete_when_count_or_bytes_reached() -> None:
    plan = ResumePlan(ReadQuery(SeqNum(0), ReadLimit(count=5)))
    plan.delivered(count=5, last_seq_num=4, metered_bytes=0, now=0.0)
    assert plan.exhausted and plan.next_query(now=0.0) is None
    plan = ResumePlan(ReadQuery(SeqNum(0), ReadLimit(bytes=100)))
    plan.delivered(count=5, last_seq_num=4, metered_bytes=100, now=0.0)
    assert plan.next_query(now=0.0) is None


def test_wait_is_reduced_by_the_time_since_the_last_batch() -> None:
    plan = ResumePlan(ReadQuery(SeqNum(0), wait=10))
    plan.delivered(count=1, last_seq_num=0, metered_bytes=0, now=100.0)
    assert plan.next_query(now=103.5) == ReadQuery(SeqNum(1), wait=7)
    assert plan.next_query(now=111.0) is None  # the wait ran out while reconnecting
