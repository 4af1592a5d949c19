import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from ner_os.store.node.certificates import ensure_certificates, make_certificates

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certs"))


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_node_certificate_is_signed_by_the_ca_for_loopback_server_and_client_auth(certificates):
    ca, node = load(certificates.ca), load(certificates.node_cert)
    node.verify_directly_issued_by(ca)
    assert node.subject.rfc4514_string() == "CN=node"
    sans = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    usages = node.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_admin_certificate_is_a_client_certificate_named_cn_admin(certificates):
    admin = load(certificates.admin_cert)
    admin.verify_directly_issued_by(load(certificates.ca))
    assert admin.subject.rfc4514_string() == "CN=admin"  # plugins.security.authcz.admin_dn
    assert list(admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_keys_are_unencrypted_pkcs8_and_private_to_the_owner(certificates):
    for key in (certificates.ca_key, certificates.node_key, certificates.admin_key):
        assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, not "BEGIN RSA PRIVATE KEY"
        serialization.load_pem_private_key(key.read_bytes(), password=None)
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_ensure_keeps_existing_certificates_and_remakes_missing_ones(tmp_path):
    first = ensure_certificates(tmp_path)
    pem = first.node_cert.read_bytes()
    assert ensure_certificates(tmp_path).node_cert.read_bytes() == pem
    first.admin_key.unlink()
    assert ensure_certificates(tmp_path).node_cert.read_bytes() != pem
