"""Console building blocks without a server: chart geometry, the figures cache, metric route labels and the
sign-in redirect target."""

from __future__ import annotations

import asyncio

from fhir_clr.api.access_log import route_label
from fhir_clr.background_cache import FiguresCache
from fhir_clr.console.charts import bar_chart
from fhir_clr.console.session import safe_next, same_origin
from fhir_clr.observability.metrics import route_template


def test_stacked_bars_sit_on_each_other_and_scale_to_a_round_top() -> None:
    chart = bar_chart("t", ["2026-10", "2026-11"], [("On time", [3.0, 0.0]), ("Late", [4.0, None])], stacked=True)
    assert [t.label for t in chart.ticks] == ["0", "2.5", "5", "7.5", "10"]
    on_time, late = chart.bars[0], chart.bars[1]
    assert on_time.title == "2026-10, On time: 3" and late.title == "2026-10, Late: 4"
    assert late.y + late.height == on_time.y and on_time.y + on_time.height == chart.baseline
    assert round(on_time.height + late.height, 1) == round((chart.baseline - 10) * 7 / 10, 1)
    assert len(chart.bars) == 3  # None draws nothing


def test_grouped_bars_stand_side_by_side() -> None:
    chart = bar_chart("t", ["a"], [("x", [1.0]), ("y", [2.0])], stacked=False, unit=" %")
    assert chart.bars[0].x + chart.bars[0].width == chart.bars[1].x
    assert chart.bars[1].title == "a, y: 2 %"


async def test_figures_are_computed_once_then_served_then_refreshed_in_the_background() -> None:
    calls = []

    async def compute() -> int:
        calls.append(1)
        await asyncio.sleep(0)
        return len(calls)
    cache = FiguresCache(ttl_seconds=0.05)
    first, second = await asyncio.gather(cache.get("k", compute), cache.get("k", compute))
    assert first.value == second.value == 1
    await asyncio.sleep(0.06)
    stale = await cache.get("k", compute)
    await asyncio.sleep(0.01)
    refreshed = await cache.get("k", compute)
    forced = await cache.get("k", compute, fresh=True)
    assert [stale.value, refreshed.value, forced.value] == [1, 2, 3]


def test_metric_labels_never_carry_ids() -> None:
    assert route_template("/Task/8d21fd67-f1cb/_history/3") == "/Task/{id}/_history/{id}"
    assert route_template("/console/referrals/abc") == "/console/referrals/{id}"
    assert route_template("/Patient/JaneDoe") == "/Patient/{id}"
    assert route_template("/$export-file/job1/Task.ndjson") == "/$export-file/{id}/{id}"
    assert route_label("/$JaneDoe", 404) == "/{unmatched}"


def test_sign_in_returns_only_to_console_pages_and_posts_must_be_same_site() -> None:
    assert safe_next("/console/compliance?from=2026-01") == "/console/compliance?from=2026-01"
    for target in ("https://evil.example/console/", "//evil.example/console", "/Task", None):
        assert safe_next(target) == "/console/"
    host = (b"host", b"fhir.example:8080")
    assert same_origin({"headers": [host, (b"sec-fetch-site", b"same-origin")]})
    assert not same_origin({"headers": [host, (b"sec-fetch-site", b"cross-site")]})
    assert same_origin({"headers": [host, (b"origin", b"https://fhir.example:8080")]})
    assert not same_origin({"headers": [host, (b"origin", b"null")]})


async def test_a_slow_first_computation_answers_none_then_finishes_in_the_background() -> None:
    release = asyncio.Event()  # the computation ends when the test says so, not after a time a stall could pass

    async def slow() -> str:
        await release.wait()
        return "done"
    cache = FiguresCache(ttl_seconds=60)
    assert await cache.get("k", slow, wait=0.01) is None
    assert await cache.get("k", slow, wait=0.01) is None  # joins the running computation
    release.set()
    await asyncio.sleep(0.01)  # the background computation needs only a turn of the loop to finish
    entry = await cache.get("k", slow, wait=0.01)
    assert entry is not None and entry.value == "done"
