"""The Secton API's endpoints, defined once: everything that names an endpoint iterates here.

The scenario's endpoint tables, the load users, the rate-limit mapper's transport, the
probes, the contract's schema files, the thresholds' scopes and the reference server's
routes all read this table, so adding an endpoint starts with one row here (see "How to
add an endpoint" in docs/architecture.md).

Example::

    from secton_harness.endpoints import ENDPOINTS, by_name
    for endpoint in ENDPOINTS:
        print(endpoint.name, endpoint.method, endpoint.path)
    by_name("chat").path        # "/v1/chat/completions"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Endpoint:
    """One API endpoint: its short name (scenario tables, threshold scopes, metrics), its
    HTTP method and path (the ``endpoint`` column of records holds the path), and the file
    name of the contract schema its 2xx answers must match (``secton_harness/schemas/``;
    the contract knows the schema by the endpoint's name)."""

    name: str
    method: Literal["GET", "POST"]
    path: str
    schema: str


MODELS = Endpoint("models", "GET", "/v1/models", "models_list.schema.json")
CHAT = Endpoint("chat", "POST", "/v1/chat/completions", "chat_completion.schema.json")

#: Every endpoint, in the order tables, reports and ``--help`` list them.
ENDPOINTS: tuple[Endpoint, ...] = (MODELS, CHAT)

#: Short name → endpoint, and path → endpoint.
BY_NAME: dict[str, Endpoint] = {endpoint.name: endpoint for endpoint in ENDPOINTS}
BY_PATH: dict[str, Endpoint] = {endpoint.path: endpoint for endpoint in ENDPOINTS}


def by_name(name: str) -> Endpoint:
    """The endpoint called ``name`` (``KeyError`` naming the known ones otherwise)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown endpoint {name!r}; known: {', '.join(BY_NAME)}") from None


#: The version prefix every endpoint path carries.
API_PREFIX = "/v1"


def api_base(base_url: str) -> str:
    """The API's base URL without a trailing ``/`` or ``/v1``: the quick start writes it
    both ways, and every path here carries ``/v1`` itself (so never ``/v1/v1``). Only the
    URL's path is looked at: a host named ``v1`` stays."""
    base = base_url.rstrip("/")
    scheme_host = base.split("://", 1)[-1]
    if "/" in scheme_host and base.endswith(API_PREFIX):
        return base.removesuffix(API_PREFIX)
    return base


def api_url(base_url: str, path: str) -> str:
    """``path`` under the API's base URL, which may end in ``/v1`` (:func:`api_base`);
    a path outside ``/v1`` (the reference server's ``/_admin``) goes under it as given."""
    if not path.startswith("/"):
        path = "/" + path
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        return api_base(base_url) + path
    return base_url.rstrip("/") + path
