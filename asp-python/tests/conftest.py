"""The real `asp serve` for the tests, on loopback, stopped afterwards."""

import os
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ASP = os.environ.get("ASP_BIN", str(Path(__file__).resolve().parents[2] / "target" / "debug" / "asp"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tls: bool) -> None:
        self.metrics = f"127.0.0.1:{free_port()}"
        args = [ASP, "serve", "--bind", "127.0.0.1:0", "--metrics", self.metrics]
        self.ca = None
        if tls:
            self.ca = os.path.join(tempfile.mkdtemp(prefix="asp-py-"), "cert.pem")
            args += ["--write-cert", self.ca]
        else:
            args.append("--plaintext")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        assert line, f"{ASP} serve exited with {self.process.wait()}"
        self.url = line.split()[1]

    def metrics_text(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=5) as response:
            return response.read().decode()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="module")
def server():
    s = Server(tls=False)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def tls_server():
    s = Server(tls=True)
    yield s
    s.stop()
