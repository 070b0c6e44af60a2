"""WebDriver HTTP over a Unix socket (the docker backend's only way into its container), no Docker needed."""

import json
import os
import socketserver
import tempfile
import threading
from http.server import BaseHTTPRequestHandler

import pytest
import urllib3
from agentrl_envs.gui.browser.container import UnixSocketConnection, unix_pool_manager


class Echo(BaseHTTPRequestHandler):
    """Answers every request with what it received (method, path, Host, body)."""

    def address_string(self) -> str:  # a Unix peer has no host address
        return "unix"

    def log_message(self, *args) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        payload = {"method": self.command, "path": self.path, "host": self.headers["Host"], "body": body}
        data = json.dumps({"value": payload}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def server_socket():
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "driver.sock")
        server = UnixHTTPServer(path, Echo)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield path
        server.shutdown()
        server.server_close()


def test_requests_go_through_the_socket(server_socket):
    manager = unix_pool_manager(server_socket, timeout=5)
    for _ in range(3):  # the kept-alive connection is reused
        reply = json.loads(manager.request("GET", "http://localhost:9515/status").data)
        assert reply["value"] == {"method": "GET", "path": "/status", "host": "localhost:9515", "body": ""}


def test_selenium_commands_reach_the_socket(server_socket):
    connection = UnixSocketConnection(server_socket, timeout=5)
    response = connection.execute("getTitle", {"sessionId": "abc"})
    assert response["value"]["method"] == "GET" and response["value"]["path"] == "/session/abc/title"
    response = connection.execute("w3cExecuteScript", {"sessionId": "abc", "script": "return 1", "args": []})
    sent = json.loads(response["value"]["body"])
    assert response["value"]["path"] == "/session/abc/execute/sync" and sent["script"] == "return 1"


def test_no_listener_is_a_connection_error():
    with tempfile.TemporaryDirectory() as folder:
        manager = unix_pool_manager(os.path.join(folder, "gone.sock"), timeout=1, retries=False)
        with pytest.raises(urllib3.exceptions.NewConnectionError, match="gone.sock"):
            manager.request("GET", "http://localhost:9515/status")
