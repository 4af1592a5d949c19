"""Certificates for a local secured OpenSearch: a CA, a node certificate (server and client auth, SAN
IP:127.0.0.1 and DNS:localhost, CN=node) and an admin client certificate (CN=admin); PKCS#8 PEM keys.

Made once per directory with the ``cryptography`` package; keys are written 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 3650
KEY_BITS = 2048


@dataclass(frozen=True)
class Certificates:
    ca: Path
    ca_key: Path
    node_cert: Path
    node_key: Path
    admin_cert: Path
    admin_key: Path


def certificate_paths(directory: Path) -> Certificates:
    return Certificates(ca=directory / "ca.pem", ca_key=directory / "ca-key.pem",
                        node_cert=directory / "node.pem", node_key=directory / "node-key.pem",
                        admin_cert=directory / "admin.pem", admin_key=directory / "admin-key.pem")


def ensure_certificates(directory: Path) -> Certificates:
    """The certificates in ``directory``, made there first when any is missing."""
    paths = certificate_paths(directory)
    if all(Path(path).is_file() for path in vars(paths).values()):
        return paths
    return make_certificates(directory)


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    paths = certificate_paths(directory)
    ca_key = _new_key()
    ca_name = _name("ner-os local CA")
    ca = (_builder(ca_name, ca_name, ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    _write_key(paths.ca_key, ca_key)
    _write(paths.ca, ca.public_bytes(serialization.Encoding.PEM))
    node_sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    _issue(ca, ca_key, paths.node_cert, paths.node_key, "node",
           [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], node_sans)
    _issue(ca, ca_key, paths.admin_cert, paths.admin_key, "admin", [ExtendedKeyUsageOID.CLIENT_AUTH])
    return paths


def client_certificate(directory: Path, user: str) -> tuple[Path, Path]:
    """A client certificate (CN=``user``, the name the node's clientcert auth domain reads) and its key,
    signed by the CA in ``directory``; made there once as ``client-<user>.pem`` / ``client-<user>-key.pem``."""
    cert_path, key_path = directory / f"client-{user}.pem", directory / f"client-{user}-key.pem"
    if not (cert_path.is_file() and key_path.is_file()):
        paths = certificate_paths(directory)
        ca = x509.load_pem_x509_certificate(paths.ca.read_bytes())
        ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
        _issue(ca, ca_key, cert_path, key_path, user, [ExtendedKeyUsageOID.CLIENT_AUTH])
    return cert_path, key_path


def _issue(ca: x509.Certificate, ca_key, cert_path: Path, key_path: Path, common_name: str, usages: list,
           sans: list | None = None) -> None:
    key = _new_key()
    builder = (_builder(_name(common_name), ca.subject, key.public_key())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    _write_key(key_path, key)
    _write(cert_path, builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])  # DN "CN=<name>"


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS)))


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # "BEGIN PRIVATE KEY": PKCS#8, as OpenSearch wants
    _write(path, pem, mode=0o600)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    tmp.replace(path)
