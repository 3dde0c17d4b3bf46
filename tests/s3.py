"""A real S3-compatible server for tests: moto's ``ThreadedMotoServer`` on 127.0.0.1.

The ``s3`` session fixture starts it on a free port and points every S3 client at it the usual
way, through the environment: ``AWS_ENDPOINT_URL`` and dummy credentials. Worker processes
inherit the environment of the process that starts them, so a cluster started after this
fixture (a ``LocalCluster``, ``dask worker`` subprocesses) reaches the same server; a cluster
started before it would not. s3fs is the client, as in a real deployment.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from conftest import free_port


@dataclass
class S3Server:
    """A running server and an s3fs filesystem talking to it."""

    endpoint: str
    env: dict[str, str]

    @property
    def fs(self):
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True)

    def new_bucket(self) -> str:
        """A fresh, empty bucket; its name."""
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.fs.mkdir(name)
        return name


@pytest.fixture(scope="session")
def s3():
    """A moto S3 server for the session; ``AWS_ENDPOINT_URL`` and credentials set meanwhile."""
    pytest.importorskip("s3fs", reason="s3fs is in the dev extra")
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        yield S3Server(env["AWS_ENDPOINT_URL"], env)
    server.stop()


__all__ = ["S3Server", "s3"]
