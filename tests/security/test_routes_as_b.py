"""Every route of the app, attacked by provider B: for each route and method, B's requests about A's ids, ids
that never existed and A's deleted ids leak nothing of A's and answer alike. The route list comes from the
application and the CapabilityStatement, so a new route or operation fails here until the suite knows it."""

from __future__ import annotations

import pytest

from tests.security.oracle import assert_clean
from tests.security.route_probes import EXEMPT, INTERACTIONS_PROBED, KNOWN, OPERATIONS_PROBED, Route, route_table
from tests.security.world import World

ROUTES = route_table()


def test_every_route_is_probed_or_exempt() -> None:
    unknown = [f"{method} {path}" for method, path in ROUTES if (method, path) not in KNOWN | EXEMPT]
    assert not unknown, f"routes the security suite does not know how to attack: {unknown}"
    gone = [f"{method} {path}" for method, path in KNOWN if (method, path) not in ROUTES]
    assert not gone, f"probes for routes the app no longer serves (remove them): {gone}"


def test_every_advertised_interaction_and_operation_is_probed(world: World) -> None:
    statement = world.b.get("/metadata").json()
    rest = statement["rest"][0]
    advertised = {i["code"] for i in rest.get("interaction", [])}
    operations = {o["name"] for o in rest.get("operation", [])}
    for resource in rest["resource"]:
        advertised |= {i["code"] for i in resource.get("interaction", [])}
        operations |= {o["name"] for o in resource.get("operation", [])}
    assert advertised - set(INTERACTIONS_PROBED) == set(), "interactions the security suite does not attack"
    assert operations - set(OPERATIONS_PROBED) == set(), "operations the security suite does not attack"


@pytest.mark.parametrize("route", [r for r in ROUTES if r not in EXEMPT], ids=lambda r: f"{r[0]} {r[1]}")
def test_route_as_b(world: World, route: Route) -> None:
    probe = KNOWN.get(route)
    assert probe is not None, f"{route[0]} {route[1]}: no probe (add one to tests/security/route_probes.py)"
    assert_clean(probe(world))


def test_the_world_is_what_the_probes_assume(world: World) -> None:
    """Control: A reads each of its resources, the plan sees the deleted ones as deleted and B reads its own
    referral, so an answer B gets about them is a decision about B, not a broken seed."""
    for resource_type, ids in world.a_ids.items():
        if resource_type == "Group":
            continue  # a Group of Members is the plan's, not A's
        for resource_id in (i for i in ids if i != world.a_import_document):
            assert world.a.get(f"/{resource_type}/{resource_id}").status_code == 200, resource_type
    for resource_type, ids in world.deleted.items():
        for resource_id in ids:
            assert world.plan.get(f"/{resource_type}/{resource_id}").status_code == 410, resource_type
    for resource_type, resource_id in world.b_ids.items():
        assert world.b.get(f"/{resource_type}/{resource_id}").status_code == 200, resource_type
