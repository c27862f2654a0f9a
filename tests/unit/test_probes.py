"""Tolerances behave as the Chaos Toolkit's do; probes stay on loopback."""

import pytest

from chaos.language.probes import ProbeSpec, jsonpath, within_tolerance
from chaos.listen.probes import ProbeError, check_loopback_url, interpolate_links, run_probe

HTTP = {"status": 200, "headers": {}, "body": {"status": "ok", "items": [{"n": 1}, {"n": 2}]}}


@pytest.mark.parametrize(
    "tol,output,ok",
    [
        (200, HTTP, True),
        (503, HTTP, False),
        ([200, 204], HTTP, True),
        ([500, 503], HTTP, False),
        (0, {"status": 0, "stdout": "", "stderr": ""}, True),
        (True, True, True),
        ("up", "up", True),
        ("up", "down", False),
        ([1, 5], 3, True),
        ([1, 5], 6, False),
        (["a", "b", "c"], "b", True),
        ({"type": "range", "range": [199, 299], "target": "status"}, HTTP, True),
        ({"type": "range", "range": [0, 1], "target": "body"}, HTTP, False),
        ({"type": "regex", "pattern": "^ok", "target": "stdout"}, {"status": 0, "stdout": "ok\n"}, True),
        ({"type": "jsonpath", "path": "$.status", "expect": "ok", "target": "body"}, HTTP, True),
        ({"type": "jsonpath", "path": "$.items[*].n", "expect": [1, 2], "target": "body"}, HTTP, True),
        ({"type": "jsonpath", "path": "$.items[*].n", "count": 2, "target": "body"}, HTTP, True),
        ({"type": "jsonpath", "path": "$.missing", "target": "body"}, HTTP, False),
        ({"type": "jsonpath", "path": "$['status']", "expect": "ok", "target": "body"}, HTTP, True),
    ],
)
def test_tolerances(tol, output, ok):
    assert within_tolerance(tol, output) is ok


def test_jsonpath_subset():
    doc = {"a": {"b": [10, 20, 30]}}
    assert jsonpath(doc, "$.a.b[-1]") == [30]
    assert jsonpath(doc, "$.a.*") == [[10, 20, 30]]
    with pytest.raises(ValueError, match="must start with"):
        jsonpath(doc, "a.b")


@pytest.mark.parametrize("url", ["http://10.0.0.1/x", "http://example.com/x", "http://192.168.1.5:8080/"])
def test_probes_refuse_addresses_off_loopback(url):
    with pytest.raises(ProbeError, match="loopback"):
        check_loopback_url(url)
    with pytest.raises(ProbeError, match="loopback"):
        run_probe(ProbeSpec("p", "http", {"url": url}), {})


def test_links_are_filled_in_at_run_time():
    assert (
        interpolate_links("${links.entry-api}/health", {"entry-api": "http://127.0.0.1:1234"})
        == "http://127.0.0.1:1234/health"
    )
    with pytest.raises(ProbeError, match="no published link 'lb'"):
        interpolate_links("${links.lb}/", {"entry-api": "x"})


def test_process_probe_output_and_timeout():
    out = run_probe(ProbeSpec("p", "process", process={"path": "sh", "arguments": ["-c", "echo hi; exit 3"]}), {})
    assert out["status"] == 3 and out["stdout"] == "hi\n"
    with pytest.raises(ProbeError, match="still running"):
        run_probe(ProbeSpec("p", "process", process={"path": "sleep", "arguments": ["5"]}, timeout=0.2), {})
    with pytest.raises(ProbeError, match="not an executable"):
        run_probe(ProbeSpec("p", "process", process={"path": "no-such-program-x"}), {})


def test_http_probe_to_a_closed_port_is_a_failed_sample():
    with pytest.raises(ProbeError, match="GET http://127.0.0.1:9/"):
        run_probe(ProbeSpec("p", "http", {"url": "http://127.0.0.1:9/"}, timeout=1), {})


def test_a_failed_connection_says_why_in_the_systems_words():
    """A dead node refuses, a cut link resets: the sample says which (it said only ConnectionError)."""
    import socket
    import struct
    import threading

    with pytest.raises(ProbeError, match="ConnectionError: connection refused"):
        run_probe(ProbeSpec("p", "http", {"url": "http://127.0.0.1:9/"}, timeout=1), {})
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def reset_the_first() -> None:
        conn, _ = srv.accept()
        conn.recv(1024)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
        conn.close()

    t = threading.Thread(target=reset_the_first, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{srv.getsockname()[1]}/"
    try:
        with pytest.raises(ProbeError, match="connection reset by peer"):
            run_probe(ProbeSpec("p", "http", {"url": url}, timeout=5), {})
    finally:
        t.join(5)
        srv.close()
