"""Server-side probes read what the servers say about themselves (parsing checked offline)."""

import http.server
import threading

import pytest

from chaos.listen.probes import ProbeError, ServerProbe, server_probes
from chaos.stack.definition import find_stack

ICECAST = b"""<icestats><clients>7</clients><source mount="/live"><listeners>5</listeners>
<slow_listeners>2</slow_listeners></source><source mount="/hold"><listeners>1</listeners>
<slow_listeners>0</slow_listeners></source></icestats>"""
HAPROXY = b"""# pxname,svname,scur,status,
listeners,FRONTEND,9,OPEN,
edges,edge-1,4,UP,
edges,edge-2,5,DOWN,
edges,BACKEND,9,UP,
"""


@pytest.fixture
def server():
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = ICECAST if self.path == "/admin/stats" else HAPROXY if self.path == "/stats;csv" else b""
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def test_icecast_and_haproxy_readings(server):
    assert ServerProbe("edge-1", "icecast", 8000).sample(server) == {
        "listeners": 6,
        "slow_listeners": 2,
        "clients": 7,
        "sources": 2,
    }
    assert ServerProbe("lb", "haproxy", 8404).sample(server) == {"up": 1, "down": 1, "sessions": 9}
    with pytest.raises(ProbeError):
        ServerProbe("room-api", "room-api", 8080).sample(server)


def test_probes_come_from_compose_labels():
    probes = {p.node: p for p in server_probes(find_stack("audio-room").services)}
    assert set(probes) == {"origin", "edge-1", "edge-2", "lb", "room-api"}
    assert probes["edge-2"].kind == "icecast" and probes["edge-2"].auth == ("admin", "deadair-admin")
