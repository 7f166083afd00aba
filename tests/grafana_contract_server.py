"""A small Grafana HTTP API double: the endpoints grafana-client calls for a push.

Grafana itself cannot be installed here, so this server implements what Grafana's HTTP API
documentation says of each endpoint the push uses, and checks the request the way Grafana
would (bearer token, JSON body shape), recording every request for the test to inspect:

- ``GET /api/health`` (no auth) and ``GET /api/frontend/settings`` (``buildInfo``);
- ``GET /api/folders``, ``GET /api/folders/:uid`` (404 ``folder not found``),
  ``POST /api/folders`` ``{title, uid?}`` (409 when the uid or title exists);
- ``POST /api/dashboards/db`` ``{dashboard: {uid, title, id: null|existing}, folderUid |
  folderId, overwrite, message}`` → ``{id, uid, url, status, version, slug}``; an existing
  uid without ``overwrite: true`` is 412 ``version-mismatch``; an unknown folder is 400;
- ``GET /api/dashboards/uid/:uid`` → ``{dashboard, meta}``;
- ``GET /api/search?type=dash-db|dash-folder&folderUIDs=&query=`` → hits.

A missing or wrong ``Authorization: Bearer`` is 401 ``Invalid API key``; a token in
``viewer_tokens`` is 403 ``Access denied`` on writes, as for a Viewer service account.

Example::

    with GrafanaContractServer(token="t") as grafana:
        push(grafana.url, "t", boards)
        assert grafana.dashboards["secton-probes"]["version"] == 1
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class _State:
    token: str
    viewer_tokens: set[str]
    requests: list[Received] = field(default_factory=list)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


class ContractViolation(Exception):
    """A request grafana-client sent that Grafana would reject as malformed (400)."""


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


class _Handler(BaseHTTPRequestHandler):
    server_version = "GrafanaContract/11"
    state: _State  # set on the subclass made per server

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _reply(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, method: str) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                self._reply(400, {"message": "bad request data"})
                return
        state = self.state
        with state.lock:
            state.requests.append(Received(method, url.path, parse_qs(url.query),
                                           {k.lower(): v for k, v in self.headers.items()},
                                           body))
        if url.path == "/api/health" and method == "GET":
            self._reply(200, {"commit": "contract", "database": "ok", "version": "11.1.0"})
            return
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        if token is None or (token != state.token and token not in state.viewer_tokens):
            self._reply(401, {"message": "Invalid API key"})
            return
        if method == "POST" and token in state.viewer_tokens:
            self._reply(403, {"message": "Access denied"})
            return
        if method == "POST" and self.headers.get("Content-Type", "").split(";")[0] != \
                "application/json":
            self._reply(400, {"message": "bad request data: Content-Type must be JSON"})
            return
        try:
            with state.lock:
                status, payload = self._route(method, url.path, parse_qs(url.query), body)
        except ContractViolation as error:
            status, payload = 400, {"message": f"bad request data: {error}"}
        self._reply(status, payload)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    # -- the API ----------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, list[str]],
               body: Any) -> tuple[int, Any]:
        state = self.state
        if method == "GET" and path == "/api/frontend/settings":
            return 200, {"buildInfo": {"version": "11.1.0", "commit": "contract"}}
        if method == "GET" and path == "/api/folders":
            return 200, [{"id": f["id"], "uid": f["uid"], "title": f["title"]}
                         for f in state.folders.values()]
        if method == "GET" and path.startswith("/api/folders/"):
            uid = path.removeprefix("/api/folders/")
            if uid not in state.folders:
                return 404, {"message": "folder not found", "status": "not-found"}
            return 200, state.folders[uid]
        if method == "POST" and path == "/api/folders":
            return self._create_folder(body)
        if method == "POST" and path == "/api/dashboards/db":
            return self._save_dashboard(body)
        if method == "GET" and path.startswith("/api/dashboards/uid/"):
            uid = path.removeprefix("/api/dashboards/uid/")
            if uid not in state.dashboards:
                return 404, {"message": "Dashboard not found"}
            saved = state.dashboards[uid]
            return 200, {"dashboard": saved["dashboard"],
                         "meta": {"folderUid": saved["folderUid"], "version":
                                  saved["version"], "slug": _slug(saved["dashboard"]["title"])}}
        if method == "GET" and path == "/api/search":
            return 200, self._search(query)
        return 404, {"message": "Not found"}

    def _create_folder(self, body: Any) -> tuple[int, Any]:
        state = self.state
        if not isinstance(body, dict) or not isinstance(body.get("title"), str) \
                or not body["title"].strip():
            raise ContractViolation("folder title is required")
        uid = body.get("uid") or f"f{state.next_id:08d}"
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
            raise ContractViolation(f"invalid folder uid {uid!r}")
        if uid in state.folders or any(f["title"] == body["title"]
                                       for f in state.folders.values()):
            return 409, {"message": "a folder with the same name already exists"}
        folder = {"id": state.new_id(), "uid": uid, "title": body["title"],
                  "url": f"/dashboards/f/{uid}/{_slug(body['title'])}", "version": 1,
                  "hasAcl": False, "canSave": True, "canEdit": True, "canAdmin": True}
        state.folders[uid] = folder
        return 200, folder

    def _save_dashboard(self, body: Any) -> tuple[int, Any]:
        state = self.state
        if not isinstance(body, dict) or not isinstance(body.get("dashboard"), dict):
            raise ContractViolation("body must be {dashboard: {...}, ...}")
        board = body["dashboard"]
        uid, title = board.get("uid"), board.get("title")
        if not isinstance(title, str) or not title:
            raise ContractViolation("Dashboard title cannot be empty")
        if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
            raise ContractViolation(f"invalid dashboard uid {uid!r}")
        folder_uid = body.get("folderUid")
        if folder_uid is None and body.get("folderId") not in (None, 0):
            folder_uid = next((f["uid"] for f in state.folders.values()
                               if f["id"] == body["folderId"]), "?missing")
        if folder_uid and folder_uid not in state.folders:
            return 400, {"message": "folder not found", "status": "not-found"}
        existing = state.dashboards.get(uid)
        if board.get("id") is not None and (existing is None or board["id"] != existing["id"]):
            return 404, {"message": "Dashboard not found", "status": "not-found"}
        if existing is not None and body.get("overwrite") is not True \
                and board.get("version") != existing["version"]:
            return 412, {"message": "The dashboard has been changed by someone else",
                         "status": "version-mismatch"}
        version = existing["version"] + 1 if existing else 1
        board_id = existing["id"] if existing else state.new_id()
        state.dashboards[uid] = {"id": board_id, "version": version, "folderUid": folder_uid,
                                 "message": body.get("message"),
                                 "dashboard": {**board, "id": board_id, "version": version}}
        slug = _slug(title)
        return 200, {"id": board_id, "uid": uid, "url": f"/d/{uid}/{slug}",
                     "status": "success", "version": version, "slug": slug}

    def _search(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        state = self.state
        kind = query.get("type", [None])[0]
        text = query.get("query", [""])[0].lower()
        folder_uids = set(query.get("folderUIDs", []))
        hits: list[dict[str, Any]] = []
        if kind in (None, "dash-folder"):
            hits += [{"id": f["id"], "uid": f["uid"], "title": f["title"],
                      "type": "dash-folder", "url": f["url"]}
                     for f in state.folders.values() if text in f["title"].lower()]
        if kind in (None, "dash-db"):
            for uid, saved in state.dashboards.items():
                title = saved["dashboard"]["title"]
                if text in title.lower() and (not folder_uids
                                              or saved["folderUid"] in folder_uids):
                    hits.append({"id": saved["id"], "uid": uid, "title": title,
                                 "type": "dash-db", "folderUid": saved["folderUid"],
                                 "tags": saved["dashboard"].get("tags", []),
                                 "url": f"/d/{uid}/{_slug(title)}"})
        return hits


class GrafanaContractServer:
    """Run the double on a free loopback port in a thread (context manager)."""

    def __init__(self, token: str, viewer_tokens: set[str] | None = None) -> None:
        self.state = _State(token=token, viewer_tokens=set(viewer_tokens or ()))
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def requests(self) -> list[Received]:
        return list(self.state.requests)

    @property
    def dashboards(self) -> dict[str, dict[str, Any]]:
        return self.state.dashboards

    @property
    def folders(self) -> dict[str, dict[str, Any]]:
        return self.state.folders

    def __enter__(self) -> GrafanaContractServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
