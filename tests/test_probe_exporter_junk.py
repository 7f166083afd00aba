"""Junk sent to the probe exporter's port: one log line, no traceback, still serving."""

from __future__ import annotations

import logging
import socket
import struct
import time
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from probes.exporter import ProbeMetrics


def _reset_mid_request(port: int) -> None:
    """Send half a request, then hang up with a TCP reset (SO_LINGER 0)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_junk_and_resets_are_one_quiet_line(capsys: pytest.CaptureFixture[str],
                                            caplog: pytest.LogCaptureFixture) -> None:
    server = ProbeMetrics(CollectorRegistry(), ["auth_valid"], ["t"]).serve(0)
    port = server.server_address[1]
    try:
        with caplog.at_level(logging.WARNING, logger="probes.exporter"):
            for junk in (b"\x00\xff\xfe\r\n\r\n", b"GARBAGE\r\n\r\n"):
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    sock.sendall(junk)
                    sock.settimeout(5)
                    sock.recv(100)
            for _ in range(3):
                _reset_mid_request(port)
            deadline = time.monotonic() + 10
            while not caplog.records and time.monotonic() < deadline:
                time.sleep(0.05)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                assert b"secton_probe_checks_total" in r.read()  # still serving
    finally:
        server.shutdown()
        server.server_close()
    lines = [r.getMessage() for r in caplog.records if r.name == "probes.exporter"]
    assert len(lines) == 1, lines  # the other resets fall within the 10 s quiet period
    assert lines[0].startswith("metrics endpoint: a request from 127.0.0.1 failed: "
                               "ConnectionResetError")
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err
