"""TLS and mutual TLS, with certificates made in the test (``cryptography``)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import billing_service_pb2_grpc as billing_grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import READER, ServerThread, fresh_database, settings_for_tests


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    name: str, key, issuer_name, issuer_key, *, ca: bool = False, server: bool = False
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        # Python 3.13's default context verifies strictly (VERIFY_X509_STRICT): it wants
        # the key identifiers a real CA writes.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=ca,
                crl_sign=ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "billing test CA")])
    ca = _certificate("billing test CA", ca_key, ca_name, ca_key, ca=True)
    files: dict[str, Path] = {}
    for role, is_server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(f"billing {role}", key, ca.subject, ca_key, server=is_server)
        files[f"{role}_key"] = folder / f"{role}.key"
        files[f"{role}_cert"] = folder / f"{role}.crt"
        files[f"{role}_key"].write_bytes(_pem_key(key))
        files[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["ca"] = folder / "ca.crt"
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return files


def _list_plans(target: str, credentials: grpc.ChannelCredentials) -> int:
    with grpc.secure_channel(target, credentials) as channel:
        stub = billing_grpc.BillingServiceStub(channel)
        return len(stub.ListPlans(pb.ListPlansRequest(), metadata=READER, timeout=10).plans)


def test_tls_serves_clients_that_trust_the_ca(tmp_path, pki: dict[str, Path]) -> None:
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(
            settings_for_tests(
                url, tls_cert_file=str(pki["server_cert"]), tls_key_file=str(pki["server_key"])
            )
        ).start()
        try:
            trusted = grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes())
            assert _list_plans(server.target, trusted) == 4
            with grpc.insecure_channel(server.target) as plain:
                with pytest.raises(grpc.RpcError) as error:
                    billing_grpc.BillingServiceStub(plain).ListPlans(
                        pb.ListPlansRequest(), metadata=READER, timeout=5
                    )
                assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            server.stop()


def test_mutual_tls_refuses_a_client_without_a_certificate(tmp_path, pki: dict[str, Path]) -> None:
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(
            settings_for_tests(
                url,
                tls_cert_file=str(pki["server_cert"]),
                tls_key_file=str(pki["server_key"]),
                tls_client_ca_file=str(pki["ca"]),
            )
        ).start()
        try:
            ca = pki["ca"].read_bytes()
            with pytest.raises(grpc.RpcError) as error:
                _list_plans(server.target, grpc.ssl_channel_credentials(root_certificates=ca))
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
            with_cert = grpc.ssl_channel_credentials(
                root_certificates=ca,
                private_key=pki["client_key"].read_bytes(),
                certificate_chain=pki["client_cert"].read_bytes(),
            )
            assert _list_plans(server.target, with_cert) == 4
        finally:
            server.stop()
