"""Upload the dashboards to a Grafana instance with grafana-client, idempotently.

The folder is found by a fixed uid derived from its title (or, failing that, by title) and
created only when missing; each dashboard is posted with its fixed uid, ``id: null`` and
``overwrite: true`` into that folder, so pushing twice updates in place (Grafana bumps the
version) instead of duplicating. Errors become one line: bad credentials (401/403), an
unreachable host, anything else Grafana refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from secton_harness.errors import HarnessError

from .panels import Json

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Pushed:
    uid: str
    title: str
    version: int | None
    url: str | None


@dataclass(frozen=True)
class PushResult:
    folder_uid: str
    folder_created: bool
    dashboards: list[Pushed]


def folder_uid_for(title: str) -> str:
    """A stable folder uid from its title: "Secton" → "secton" (Grafana allows 40 chars)."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", title.strip().lower()).strip("-")
    return (slug or "secton")[:40]


def _api(url: str, token: str) -> Any:
    from grafana_client import GrafanaApi
    from grafana_client.client import TokenAuth

    return GrafanaApi.from_url(url, credential=TokenAuth(token), timeout=TIMEOUT_S)


def _explain(error: Exception, url: str) -> HarnessError:
    """Map a grafana-client / niquests exception to one user-facing line."""
    import niquests
    from grafana_client.client import GrafanaException

    if isinstance(error, GrafanaException):
        status = error.status_code
        if status in (401, 403):
            what = "bad credentials" if status == 401 else "permission denied"
            return HarnessError(f"Grafana at {url}: {what} (HTTP {status}); check "
                                "--token / GRAFANA_TOKEN (needs Editor rights)")
        if status == 0:
            return HarnessError(f"Grafana at {url}: unreachable ({_first_line(error)})")
        return HarnessError(f"Grafana at {url}: HTTP {status}: {_first_line(error)}")
    if isinstance(error, niquests.exceptions.RequestException):
        return HarnessError(f"Grafana at {url}: unreachable ({type(error).__name__}); "
                            "check --url / GRAFANA_URL")
    return HarnessError(f"Grafana at {url}: {type(error).__name__}: {_first_line(error)}")


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "message", "") or error)
    return text.splitlines()[0][:200] if text else type(error).__name__


def _ensure_folder(api: Any, title: str) -> tuple[str, bool]:
    from grafana_client.client import GrafanaClientError

    uid = folder_uid_for(title)
    try:
        return str(api.folder.get_folder(uid)["uid"]), False
    except GrafanaClientError as error:
        if error.status_code != 404:
            raise
    for folder in api.folder.get_all_folders() or []:
        if folder.get("title") == title:
            return str(folder["uid"]), False
    created = api.folder.create_folder(title, uid=uid)
    return str(created["uid"]), True


def push(url: str, token: str, boards: dict[str, Json], folder: str = "Secton") -> PushResult:
    """Create or update every dashboard in ``folder``; raises HarnessError on failure."""
    if not url.startswith(("http://", "https://")):
        raise HarnessError(f"--url: {url!r} is not an http(s) URL, e.g. http://localhost:3000")
    try:
        api = _api(url, token)
        folder_uid, created = _ensure_folder(api, folder)
        pushed = []
        for board in boards.values():
            body = {"dashboard": {**board, "id": None}, "folderUid": folder_uid,
                    "overwrite": True, "message": "secton-harness dashboards push"}
            reply = api.dashboard.update_dashboard(body)
            pushed.append(Pushed(uid=str(reply.get("uid", board["uid"])),
                                 title=board["title"], version=reply.get("version"),
                                 url=reply.get("url")))
    except HarnessError:
        raise
    except Exception as error:  # every client failure (HTTP, network, JSON) → one line
        raise _explain(error, url) from None
    return PushResult(folder_uid=folder_uid, folder_created=created, dashboards=pushed)
