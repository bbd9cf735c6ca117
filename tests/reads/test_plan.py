"""The resume planner: what to ask upstream after a failure, given what was delivered."""

import pytest

from sidecar.reads.plan import Discontinuity, ResumePlan
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
    plan.caught_up(StreamPosition(0, 0), now=99.0)  # following: S2's wait has started
    plan.delivered(count=1, last_seq_num=0, metered_bytes=0, now=100.0)
    assert plan.next_query(now=103.4) == ReadQuery(SeqNum(1), wait=7)
    assert plan.next_query(now=111.0) is None  # the wait ran out while reconnecting


def test_wait_counts_from_the_first_heartbeat_across_reconnects() -> None:
    """S2's sessions: a finite wait starts at the first heartbeat and is reset by each delivered
    batch, not by heartbeats; a reconnect does not restart it."""
    plan = ResumePlan(ReadQuery(TailOffset(0), wait=3))
    plan.caught_up(StreamPosition(5, 0), now=10.0)
    plan.caught_up(StreamPosition(5, 0), now=11.0)  # a later heartbeat (a reconnect's) does not reset it
    assert plan.next_query(now=11.0) == ReadQuery(SeqNum(5), wait=2)
    assert plan.next_query(now=12.6) is None


def test_wait_has_not_started_while_catching_up() -> None:
    """Catch-up batches arrive before the session follows: none of the wait has run yet."""
    plan = ResumePlan(ReadQuery(SeqNum(0), wait=3))
    plan.delivered(count=1000, last_seq_num=999, metered_bytes=0, now=0.0)
    assert plan.next_query(now=60.0) == ReadQuery(SeqNum(1000), wait=3)


def test_records_must_continue_where_the_last_ones_ended() -> None:
    plan = ResumePlan(ReadQuery(SeqNum(0)))
    assert plan.admit_records(0, response_start=True) == 0
    plan.delivered(count=5, last_seq_num=4, metered_bytes=0, now=0.0)
    with pytest.raises(Discontinuity, match="skips"):
        plan.admit_records(7, response_start=False)  # a gap inside one response: upstream error
    with pytest.raises(Discontinuity, match="repeats"):
        plan.admit_records(3, response_start=True)  # a repeat is never trimming


def test_a_resumed_response_that_starts_later_skips_trimmed_records() -> None:
    """S2 answers a read below the trim point from the first remaining record (s2-lite's read
    path scans from the start key)."""
    plan = ResumePlan(ReadQuery(SeqNum(0)))
    plan.delivered(count=5, last_seq_num=4, metered_bytes=0, now=0.0)
    assert plan.admit_records(9, response_start=True) == 4  # 5..8 are gone


def test_a_heartbeat_may_not_skip_records_this_response_has_not_sent() -> None:
    """Records 0-4, a heartbeat with tail 7, then 5-6: taking the heartbeat lost 5 and 6 once."""
    plan = ResumePlan(ReadQuery(SeqNum(0), ReadLimit(count=10), wait=5))
    plan.delivered(count=5, last_seq_num=4, metered_bytes=0, now=0.0)
    with pytest.raises(Discontinuity, match="tail is 7"):
        plan.admit_heartbeat(StreamPosition(7, 0), response_start=False)
    assert plan.next_query(now=0.0) == ReadQuery(SeqNum(5), ReadLimit(count=5), wait=5)
    # A heartbeat at exactly where we are, or a stale one, is fine.
    assert plan.admit_heartbeat(StreamPosition(5, 0), response_start=False) == 0
    assert plan.admit_heartbeat(StreamPosition(3, 0), response_start=False) == 0


def test_a_resumed_response_that_finds_everything_trimmed_starts_with_a_heartbeat() -> None:
    plan = ResumePlan(ReadQuery(SeqNum(0)))
    plan.delivered(count=5, last_seq_num=4, metered_bytes=0, now=0.0)
    assert plan.admit_heartbeat(StreamPosition(12, 0), response_start=True) == 7
    plan.caught_up(StreamPosition(12, 0), now=1.0)
    assert plan.next_query(now=1.0) == ReadQuery(SeqNum(12))
