"""TLS on the gRPC and HTTP ports, with certificates this test makes (the `cryptography` package): a server
with a certificate is reached only over TLS by clients that trust its CA; with a client CA it
also requires client certificates signed by it (mTLS). The CLI and the client library connect."""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tributary import Client
from tributary._proto.cdp.v1 import admin_pb2, admin_pb2_grpc, profile_pb2, profile_pb2_grpc

Issued = tuple[bytes, bytes]  # (certificate PEM, private key PEM)


def _issue(name: str, issuer: Issued | None, *, server: bool = False) -> Issued:
    """A certificate for `name`, signed by `issuer` (None: self-signed, a CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    if issuer is None:
        issuer_name, signing_key = subject, key
    else:
        issuer_cert = x509.load_pem_x509_certificate(issuer[0])
        issuer_name = issuer_cert.subject
        signing_key = serialization.load_pem_private_key(issuer[1], password=None)  # type: ignore[assignment]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif issuer is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    certificate = builder.sign(signing_key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pki")
    ca = _issue("Test CA", None)
    other_ca = _issue("Another CA", None)
    server = _issue("127.0.0.1", ca, server=True)
    client = _issue("client", ca)
    stranger = _issue("stranger", other_ca)
    files = {}
    for name, (cert, key) in {"ca": ca, "server": server, "client": client, "stranger": stranger}.items():
        (folder / f"{name}.pem").write_bytes(cert)
        (folder / f"{name}.key").write_bytes(key)
        files[name] = (folder / f"{name}.pem", folder / f"{name}.key")
    return {"ca": ca, "client": client, "stranger": stranger, "files": files}


def _tls_env(pki: dict[str, Any], *, mtls: bool = False) -> dict[str, str]:
    cert, key = pki["files"]["server"]
    env = {"TRIBUTARY_TLS_CERT_FILE": str(cert), "TRIBUTARY_TLS_KEY_FILE": str(key)}
    if mtls:
        env["TRIBUTARY_TLS_CLIENT_CA_FILE"] = str(pki["files"]["ca"][0])
    return env


def _sources(target: str, credentials: grpc.ChannelCredentials | None, token: str) -> list[str]:
    channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    with channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        reply = stub.ListSources(
            admin_pb2.ListSourcesRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=5
        )
        return [s.name for s in reply.sources]


def test_a_server_with_a_certificate_speaks_only_tls_to_clients_trusting_its_ca(
    server_factory: Any, pki: dict[str, Any]
) -> None:
    server = server_factory(env=_tls_env(pki), start=False)
    server.credentials = grpc.ssl_channel_credentials(root_certificates=pki["ca"][0])
    server.start()
    assert "development" in _sources(server.target, server.credentials, server.admin_token)
    for refused in (None, grpc.ssl_channel_credentials(root_certificates=pki["stranger"][0])):
        with pytest.raises(grpc.RpcError) as caught:
            _sources(server.target, refused, server.admin_token)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    # The client library, with the CA, sends events.
    client = Client(server.target, server.write_key, credentials=server.credentials, flush_interval=0.01)
    client.track("tls-user", "Signed In", message_id="over-tls")
    client.close()
    with server.channel() as channel:
        found = profile_pb2_grpc.ProfileServiceStub(channel).GetProfile(
            profile_pb2.GetProfileRequest(identifier="user_id:tls-user"), metadata=server.admin_metadata, timeout=5
        )
    assert found.profile.id


def test_the_http_port_serves_https_with_the_same_certificate(server_factory: Any, pki: dict[str, Any]) -> None:
    server = server_factory(env=_tls_env(pki), start=False)
    server.credentials = grpc.ssl_channel_credentials(root_certificates=pki["ca"][0])
    server.start()
    trusting = ssl.create_default_context(cafile=str(pki["files"]["ca"][0]))
    url = f"https://127.0.0.1:{server.http_port}"
    with urllib.request.urlopen(f"{url}/health", context=trusting, timeout=10) as answer:
        assert answer.status == 200
    # The Tracking API over HTTPS stores the event.
    body = json.dumps({"userId": "https-user", "event": "Signed In", "messageId": "over-https"}).encode()
    key = base64.b64encode(f"{server.write_key}:".encode()).decode()
    request = urllib.request.Request(
        f"{url}/v1/track", data=body, headers={"Authorization": f"Basic {key}", "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, context=trusting, timeout=10) as answer:
        assert json.loads(answer.read()) == {"success": True}
    # A client that does not trust the CA, or speaks plain HTTP, gets nothing.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/health", context=ssl.create_default_context(), timeout=10)
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/health", timeout=10)
    # A client stalled in its handshake holds up nobody else.
    with (
        socket.create_connection(("127.0.0.1", server.http_port)),
        urllib.request.urlopen(f"{url}/health", context=trusting, timeout=10) as answer,
    ):
        assert answer.status == 200


def test_mtls_requires_a_client_certificate_signed_by_the_client_ca(server_factory: Any, pki: dict[str, Any]) -> None:
    server = server_factory(env=_tls_env(pki, mtls=True), start=False)
    cert, key = pki["client"]
    server.credentials = grpc.ssl_channel_credentials(pki["ca"][0], private_key=key, certificate_chain=cert)
    server.start()
    assert "development" in _sources(server.target, server.credentials, server.admin_token)
    stranger_cert, stranger_key = pki["stranger"]
    for refused in (
        grpc.ssl_channel_credentials(root_certificates=pki["ca"][0]),  # no client certificate
        grpc.ssl_channel_credentials(pki["ca"][0], private_key=stranger_key, certificate_chain=stranger_cert),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            _sources(server.target, refused, server.admin_token)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    # The CLI, given the CA and its certificate by environment variables.
    files = pki["files"]
    env = {
        **os.environ,
        "TRIBUTARY_TLS_CA": str(files["ca"][0]),
        "TRIBUTARY_TLS_CLIENT_CERT": str(files["client"][0]),
        "TRIBUTARY_TLS_CLIENT_KEY": str(files["client"][1]),
    }
    command = [sys.executable, "-m", "cdp_server", "source", "list", "--json", "--target", server.target]
    listed = subprocess.run(
        [*command, "--token", server.admin_token], env=env, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert "development" in listed.stdout


def test_tls_settings_are_checked(server_factory: Any, pki: dict[str, Any], tmp_path: Path) -> None:
    cert, _ = pki["files"]["server"]
    for env, message in [
        ({"TRIBUTARY_TLS_CERT_FILE": str(cert)}, "tls_cert_file and tls_key_file go together"),
        (
            {"TRIBUTARY_TLS_CERT_FILE": str(tmp_path / "missing.pem"), "TRIBUTARY_TLS_KEY_FILE": str(cert)},
            "tls_cert_file: cannot read",
        ),
    ]:
        command = [
            sys.executable,
            "-m",
            "cdp_server",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--grpc-port",
            "0",
        ]
        done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and message in done.stderr, done.stderr


def test_a_plain_server_still_answers_plain_clients(server: Any) -> None:
    assert "development" in _sources(server.target, None, server.admin_token)
