"""Client options for TLS, client certificates (mTLS) and bearer tokens, against a timbre-server
started with --tls_cert, --tls_key, --tls_client_ca, --token_file and --admin_token_file."""
import os
import pathlib
import subprocess

import numpy as np
import pytest

from timbre_client import Client, PermissionDenied, Unauthenticated, Unavailable
from conftest import DATA

USER_TOKEN = "user-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> pathlib.Path:
    directory = tmp_path_factory.mktemp("certs")
    subprocess.run(["bash", str(DATA / "make_test_certs.sh"), str(directory)], check=True)
    return directory


def token_files(directory: pathlib.Path):
    for name, token in (("user.tokens", USER_TOKEN), ("admin.tokens", ADMIN_TOKEN)):
        (directory / name).write_text(token + "\n")
        os.chmod(directory / name, 0o600)
    return directory / "user.tokens", directory / "admin.tokens"


@pytest.fixture
def secure_server(start_server, certs, tmp_path):
    user, admin = token_files(tmp_path)
    return start_server(f"--tls_cert={certs}/server.pem", f"--tls_key={certs}/server.key",
                        f"--tls_client_ca={certs}/ca.pem", f"--token_file={user}",
                        f"--admin_token_file={admin}", "--drain_grace=0s")


def secure_client(server, certs, **options):
    options.setdefault("ca", str(certs / "ca.pem"))
    options.setdefault("cert", str(certs / "client.pem"))
    options.setdefault("key", str(certs / "client.key"))
    return Client(server.target, timeout=10, retries=0, **options)


def test_user_and_admin_tokens(secure_server, certs, queries):
    with secure_client(secure_server, certs, token=USER_TOKEN) as user:
        assert [s.name for s in user.speakers()] == ["rvc"]
        assert user.blend("rvc", queries).shape == queries.shape
        with user.session("rvc") as session:
            assert session.blend(queries[:4].astype(np.float16)).dtype == np.float16
        with pytest.raises(PermissionDenied):
            user.unload("rvc")
        with pytest.raises(PermissionDenied):
            user.jobs()
    with secure_client(secure_server, certs, token=ADMIN_TOKEN) as admin:
        admin.unload("rvc")
        assert admin.load("rvc").name == "rvc"
        assert admin.jobs() == []


def test_refusals(secure_server, certs):
    with secure_client(secure_server, certs) as no_token:
        with pytest.raises(Unauthenticated):
            no_token.speakers()
    with secure_client(secure_server, certs, token="not-a-known-token-0000") as wrong:
        with pytest.raises(Unauthenticated):
            wrong.speakers()
    with secure_client(secure_server, certs, cert=None, key=None, token=USER_TOKEN) as no_cert:
        with pytest.raises(Unavailable):
            no_cert.speakers()
    with secure_client(secure_server, certs, ca=str(certs / "other_ca.pem"),
                       token=USER_TOKEN) as wrong_ca:
        with pytest.raises(Unavailable):
            wrong_ca.speakers()
    with Client(secure_server.target, timeout=5, retries=0) as plain:
        with pytest.raises(Unavailable):
            plain.speakers()


def test_server_name_override(secure_server, certs):
    target = secure_server.target.replace("127.0.0.1", "localhost")
    with Client(target, ca=str(certs / "ca.pem"), cert=str(certs / "client.pem"),
                key=str(certs / "client.key"), token=USER_TOKEN, timeout=10) as by_name:
        assert by_name.speakers()
    with secure_client(secure_server, certs, server_name="localhost", token=USER_TOKEN) as named:
        assert named.speakers()
    with secure_client(secure_server, certs, server_name="elsewhere.example",
                       token=USER_TOKEN) as misnamed:
        with pytest.raises(Unavailable):
            misnamed.speakers()
