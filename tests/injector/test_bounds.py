"""The work budget that keeps reviews at once under the chart's memory limit, on its own."""

from __future__ import annotations

import asyncio
import contextlib

from sidecar.injector import bounds
from sidecar.injector.bounds import WorkBudget


async def _hold(budget: WorkBudget, cost: int, order: list[str], name: str, release: asyncio.Event) -> None:
    async with budget.reserve(cost):
        order.append(name)
        await release.wait()


async def test_reviews_wait_in_arrival_order_until_their_cost_fits() -> None:
    """A big review at the head of the line is not overtaken by small ones arriving after it (it
    would starve under steady small traffic), and never more than the budget is reserved."""
    budget = WorkBudget(100)
    order: list[str] = []
    first, big, small = asyncio.Event(), asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(_hold(budget, 60, order, "first", first))]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(_hold(budget, 80, order, "big", big)))
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(_hold(budget, 10, order, "small", small)))
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == ["first"] and budget.used == 60  # "small" fits, but "big" is ahead of it
    first.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == ["first", "big", "small"] and budget.used == 90
    big.set()
    small.set()
    await asyncio.gather(*tasks)
    assert budget.used == 0


async def test_a_cost_over_the_budget_runs_alone_and_a_cancelled_wait_reserves_nothing() -> None:
    budget = WorkBudget(100)
    order: list[str] = []
    huge = asyncio.Event()
    holder = asyncio.create_task(_hold(budget, 10**9, order, "huge", huge))
    await asyncio.sleep(0)
    assert order == ["huge"] and budget.used == 100
    waiter = asyncio.create_task(_hold(budget, 1, order, "waiter", asyncio.Event()))
    await asyncio.sleep(0)
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    huge.set()
    await holder
    assert budget.used == 0 and order == ["huge"]
    async with budget.reserve(100):
        assert budget.used == 100


def test_review_cost_assumes_the_biggest_body_when_the_length_is_unknown() -> None:
    assert bounds.review_cost(1000) == 1000 * bounds.COST_PER_BYTE
    assert (
        bounds.review_cost(None) == bounds.review_cost(10 * bounds.MAX_BODY) == bounds.MAX_BODY * bounds.COST_PER_BYTE
    )
    # The worst a body can take fits in the budget, next to the process itself (~45 MiB), under
    # the chart's 256Mi limit.
    assert bounds.review_cost(None) <= bounds.WORK_BUDGET <= 256 * bounds.MiB - 64 * bounds.MiB
