"""`facerecon view` answers only requests that name it by a loopback Host (DNS-rebinding guard); no browser."""
from __future__ import annotations

import http.client

import pytest

from facerecon.viewer.server import ViewerServer, host_allowed, Manifest


def test_host_allowed_rules():
    for ok in ("127.0.0.1:8123", "localhost:8123", "LOCALHOST:8123", "[::1]:8123"):
        assert host_allowed(ok, 8123), ok
    for bad in (None, "", "127.0.0.1", "localhost", "evil.example:8123", "127.0.0.1:8124", "127.0.0.1.evil.example:8123",
                "localhost.:8123", "[::1]", "::1:8123", "0.0.0.0:8123", "127.0.0.2:8123"):
        assert not host_allowed(bad, 8123), bad


@pytest.fixture()
def server(tmp_path):
    (tmp_path / "face.glb").write_bytes(b"glTF-not-really")
    srv = ViewerServer(Manifest(tmp_path.resolve(), ["face.glb"]), 0)
    import threading

    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _get(srv, path: str, host: str | None) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    try:
        c.putrequest("GET", path, skip_host=True)
        if host is not None:
            c.putheader("Host", host)
        c.endheaders()
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_server_refuses_foreign_host(server):
    port = server.server_address[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        for path in ("/", "/manifest.json", "/files/face.glb"):
            status, _ = _get(server, path, host)
            assert status == 200, (host, path, status)
    for host in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1:{port + 1}", None):
        for path in ("/", "/manifest.json", "/files/face.glb"):
            status, body = _get(server, path, host)
            assert status == 403, (host, path, status)
            assert b"glTF" not in body and b"glbs" not in body
