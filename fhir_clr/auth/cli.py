"""``fhir-clr clients add | list | disable``: manage the registry of backend-services clients."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson

from fhir_clr.auth.authstore import AuthStore, build_auth_store
from fhir_clr.auth.clients import ClientRecord, Role
from fhir_clr.cli_settings import add_data_argument, command_settings
from fhir_clr.config import Settings


async def _with_store(settings: Settings, action: Callable[[AuthStore], Awaitable[int]]) -> int:
    from fhir_clr.store.factory import build_store

    store = build_store(settings)
    await store.open()
    auth_store: AuthStore = build_auth_store(settings.data_dir, store)
    try:
        await auth_store.open()
        return await action(auth_store)
    finally:
        await auth_store.close()
        await store.close()


def _add(args: argparse.Namespace) -> int:
    jwks = None
    if args.jwks is not None:
        jwks = orjson.loads(Path(args.jwks).read_bytes())
        if "keys" not in jwks and "kty" in jwks:
            jwks = {"keys": [jwks]}
    try:
        record = ClientRecord(client_id=args.client_id, name=args.name or args.client_id,
                              organization=args.organization, role=Role(args.role), scopes=tuple(args.scope),
                              jwks=jwks, jwks_url=args.jwks_url)
    except ValueError as bad:
        print(f"fhir-clr clients add: {bad}", file=sys.stderr)
        return 2

    async def action(store: AuthStore) -> int:
        await store.put_client(record)
        print(f"registered client {record.client_id} for {record.organization} ({record.role.value})")
        return 0
    return asyncio.run(_with_store(command_settings(args), action))


def _list(args: argparse.Namespace) -> int:
    async def action(store: AuthStore) -> int:
        for record in await store.list_clients():
            keys = record.jwks_url or f"{len((record.jwks or {}).get('keys', []))} inline key(s)"
            state = "enabled" if record.enabled else "DISABLED"
            print(f"{record.client_id}\t{state}\t{record.organization}\t{record.role.value}\t"
                  f"{' '.join(record.scopes)}\t{keys}")
        return 0
    return asyncio.run(_with_store(command_settings(args), action))


def _disable(args: argparse.Namespace) -> int:
    async def action(store: AuthStore) -> int:
        record = await store.get_client(args.client_id)
        if record is None:
            print(f"fhir-clr clients disable: no client {args.client_id}", file=sys.stderr)
            return 1
        data = record.to_json()
        data["enabled"] = False
        await store.put_client(ClientRecord.from_json(data))
        print(f"disabled client {args.client_id}")
        return 0
    return asyncio.run(_with_store(command_settings(args), action))


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``clients`` command group to the ``fhir-clr`` parser."""
    clients = commands.add_parser("clients", help="manage SMART backend-services clients")
    actions = clients.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register (or replace) a client")
    add.add_argument("client_id", help="the client_id the client will put in its token requests")
    add.add_argument("--organization", required=True, help="Organization/<id> the client acts for")
    add.add_argument("--role", required=True, choices=[r.value for r in Role],
                     help="what the client may do (its scopes are limited to this role)")
    add.add_argument("--scope", action="append", required=True, help="allowed scope (repeatable)")
    keys = add.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks", type=Path, help="file with the client's public JWKS (or one JWK)")
    keys.add_argument("--jwks-url", help="URL of the client's public JWKS")
    add.add_argument("--name", help="display name")
    add.set_defaults(func=_add)
    listing = actions.add_parser("list", help="list registered clients")
    listing.set_defaults(func=_list)
    disable = actions.add_parser("disable", help="disable a client (its tokens stop working within seconds)")
    disable.add_argument("client_id", help="the client to disable")
    disable.set_defaults(func=_disable)
    for sub in (add, listing, disable):
        add_data_argument(sub)
