"""Calls the server makes to URLs others gave it (webhooks, client JWKS URLs): which addresses may be reached,
and an HTTP transport that connects only to the addresses it vetted."""
