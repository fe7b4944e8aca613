"""The per-file-kind import strategies (``fhir_clr.imports.row_kinds``) on a real embedded store: MIF rows are one
round of creates committed before the next batch; RTF rows PUT their referral Task, one referral's rows in the
order their statuses happened; ASF rows PUT the CLR Referral their Task is focused on; rows another provider's,
unknown or saying nothing new lead to no write."""

from __future__ import annotations

from datetime import date
from typing import Any

from fhir_clr.app import Services
from fhir_clr.imports.asf_rows import UNREADABLE, AsfRows
from fhir_clr.imports.job import FileImporter, ImportRequest
from fhir_clr.imports.mif_rows import MifRows
from fhir_clr.imports.referral_match import ReferralMatcher, RowKeys, RowProblem, row_keys
from fhir_clr.imports.row_kinds import Parsed, RowOutcome, rounds_by_referral
from fhir_clr.imports.rtf_rows import RtfRows
from fhir_clr.mapping.fhir_map import record_to_fhir
from fhir_clr.mapping.headers import match_headers
from fhir_clr.mapping.readers import RawRow, open_table
from fhir_clr.mapping.rows import parse_row
from fhir_clr.mapping.spec import MappingSpec
from tests.api.clr_helpers import AUTH_URL
from tests.api.test_asf_import import asf, cs_referral
from tests.api.test_mif_import import mif, mif_row
from tests.api.test_rtf_import import SYSTEMS, referral, row, rtf, valid_npi
from tests.bundled import find_spec


def parsed_rows(spec: MappingSpec, data: bytes) -> list[Parsed]:
    """The file's rows as the import job hands them to a strategy: FHIR fragments and identifying keys."""
    with open_table(data, "rows.csv") as table:
        headers = match_headers(spec, table.headers)
        out = []
        for raw in table:
            record = parse_row(spec, headers, raw)
            assert record.ok, record.errors
            fragments = record_to_fhir(spec, record.values)
            out.append((raw, fragments, row_keys(fragments, SYSTEMS)))
        return out


async def changes(kind: Any, parsed: list[Parsed]) -> list[Any]:
    await kind.prefetch(parsed)
    return [await kind.change(raw.number, fragments, keys) for raw, fragments, keys in parsed]


def item(number: int, cin: str, order: int) -> tuple[Parsed, int]:
    """A parsed row of the referral ``cin`` (the content does not count for the rounds), with its order."""
    return (RawRow(number, []), {}, RowKeys(cin, "ecm", "1")), order


def test_rounds_hold_the_kth_row_of_each_referral_in_file_order() -> None:
    rows = [item(2, "A", 3), item(3, "B", 1), item(4, "A", 1), item(5, "A", 2), item(6, "C", 9), item(7, "B", 0)]
    order = {parsed[0].number: key for parsed, key in rows}
    rounds = rounds_by_referral([parsed for parsed, _ in rows], lambda p: (order[p[0].number],))
    assert [[p[0].number for p in part] for part in rounds] == [[4, 6, 7], [3, 5], [2]]


async def test_rtf_rows_update_the_referral_task_in_the_order_statuses_happened(services: Services) -> None:
    npi = valid_npi("823456789")
    task = await referral(services, "82345678A", npi)
    spec = find_spec("rtf", "ecm")
    kind = RtfRows(ReferralMatcher(services.engine, spec), None)
    assert kind.pipelined
    parsed = parsed_rows(spec, rtf([row("82345678A", npi, "4", date(2026, 11, 9)),   # Outreach Initiated
                                    row("82345678A", npi, "1", date(2026, 11, 9)),   # Accepted, same day
                                    row("82345678A", npi, "5", date(2026, 11, 6), "other"),  # Closed, earlier
                                    row("99999999Z", npi, "1", date(2026, 11, 6))]))
    rounds = kind.rounds(parsed)
    # by status date, then by how far the status goes: Closed (6 Nov), Accepted, Outreach (9 Nov)
    assert [[p[0].number for p in part] for part in rounds] == [[4, 5], [3], [2]]
    first, unknown = await changes(kind, rounds[0])
    assert kind.members == {task["for"]["reference"].removeprefix("Patient/")}
    assert first["type"] == "transaction"
    [entry] = first["entry"]
    assert entry["request"] == {"method": "PUT", "url": f"Task/{task['id']}"}
    assert entry["resource"]["businessStatus"]["coding"][0]["code"] == "5"
    assert isinstance(unknown, RowProblem) and unknown.rule == "match" and unknown.column == "member_cin"


async def test_rtf_rows_saying_nothing_new_or_of_another_provider_write_nothing(services: Services) -> None:
    npi, other = valid_npi("833456789"), valid_npi("833456780")
    await referral(services, "83345678B", npi)
    spec = find_spec("rtf", "ecm")
    data = rtf([row("83345678B", npi, "1", date(2026, 11, 5))])
    report = await FileImporter(services.bundles, services.engine.clock, services.specs).run(
        ImportRequest("rtf", data, "rtf.csv", "ecm"))
    assert report.counts["applied"] == 1
    accepted = parsed_rows(spec, data)
    assert await changes(RtfRows(ReferralMatcher(services.engine, spec), None), accepted) == [RowOutcome.UNCHANGED]
    assert await changes(RtfRows(ReferralMatcher(services.engine, spec), other), accepted) == [RowOutcome.SKIPPED]


async def test_asf_rows_update_the_referral_their_task_is_for(services: Services) -> None:
    npi = valid_npi("843456789")
    request, _ = await cs_referral(services, "84345678C", npi)
    spec = find_spec("asf")
    kind = AsfRows(ReferralMatcher(services.engine, spec), None, services.engine.clock)
    base = {"mcp_name": "Plan", "cs_service": "housing-deposits", "cs_provider_name": "CS provider",
            "cs_provider_npi": npi, "member_cin": "84345678C"}
    parsed = parsed_rows(spec, asf([{**base, "authorization_status": "approved"},
                                    {**base, "authorization_status": "denied"}]))
    rounds = kind.rounds(parsed)
    assert [[p[0].number for p in part] for part in rounds] == [[2], [3]]  # one referral: file order
    [change] = await changes(kind, rounds[0])
    [entry] = change["entry"]
    assert entry["request"] == {"method": "PUT", "url": f"ServiceRequest/{request['id']}"}
    decision = next(e for e in entry["resource"]["extension"] if e["url"] == AUTH_URL)
    parts = {p["url"]: p for p in decision["extension"]}
    assert parts["status"]["valueCoding"]["code"] == "approved"
    assert parts["date"]["valueDateTime"] == services.engine.clock().isoformat()
    kind.matcher.referrals.clear()  # the referral is not there for this caller
    assert await kind.change(2, rounds[0][0][1], rounds[0][0][2]) is UNREADABLE


async def test_mif_rows_are_one_round_of_creates(services: Services) -> None:
    spec = find_spec("mif")
    kind = MifRows(services.engine.rules)
    assert not kind.pipelined
    npi = valid_npi("853456789")
    parsed = parsed_rows(spec, mif([mif_row("85345678D", npi), mif_row("85345678D", npi, referral_date=None)]))
    assert kind.rounds(parsed) == [parsed]
    made, refused = await changes(kind, parsed)
    assert kind.members == set()
    assert made["type"] == "transaction"
    assert {e["request"]["method"] for e in made["entry"]} == {"POST"}
    assert {e["resource"]["resourceType"] for e in made["entry"]} >= {"Patient", "ServiceRequest", "Task"}
    assert isinstance(refused, RowProblem) and refused.rule == "required"
