"""A third-party FHIR client (fhirpy) drives create/read/search/update/delete against the live server."""

from __future__ import annotations

import pytest
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

from tests.api.helpers import unique


async def test_fhirpy_crud_and_search(live_server) -> None:
    client = AsyncFHIRClient(live_server.base_url, extra_headers={"Accept": "application/fhir+json"})
    family = unique("Fhirpy")
    member = client.resource("Patient", name=[{"family": family, "given": ["Luis"]}], gender="male")
    await member.save()
    assert member.id

    fetched = await client.reference("Patient", member.id).to_resource()
    assert fetched["name"][0]["family"] == family

    member["gender"] = "other"
    await member.save()
    assert (await client.reference("Patient", member.id).to_resource())["gender"] == "other"

    org = client.resource("Organization", name=unique("FhirpyOrg"))
    await org.save()
    referral = client.resource("Task", status="requested", intent="order",
                               owner=org.to_reference(), **{"for": member.to_reference()})
    await referral.save()
    found = await client.resources("Task").search(owner=f"Organization/{org.id}", status="requested").fetch_all()
    assert [t.id for t in found] == [referral.id]
    assert await client.resources("Patient").search(family=family).count() == 1
    with_patient = await client.resources("Task").search(_id=referral.id).include("Task", "patient").fetch_raw()
    assert {e["resource"]["resourceType"] for e in with_patient["entry"]} == {"Task", "Patient"}

    await referral.delete()
    with pytest.raises(ResourceNotFound):
        await client.reference("Task", referral.id).to_resource()
