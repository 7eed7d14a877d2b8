"""A throw-away PKI for the TLS tests, generated at test time (Debian 12: python3-cryptography).

Pki(directory) writes, as PEM files in `directory`:

- ca.pem / ca.key: the CA that signs the server and the valid client certificates, and the CRL;
- intermediate-ca.pem: an intermediate CA under ca.pem (server-chained.pem, client-chained.pem are its);
- other-ca.pem: an unrelated CA (it signs the "other_ca" client certificate);
- server.pem / server.key: CN=localhost, SAN DNS:localhost + IP:127.0.0.1, extendedKeyUsage serverAuth;
- server-chained.pem / .key: the same names, issued by the intermediate; the .pem holds leaf + intermediate;
- server-encrypted.key: the same key, PKCS#8-encrypted with Pki.KEY_PASSWORD;
- client-<kind>.pem / .key for every kind in VALID_CLIENTS and INVALID_CLIENTS;
- crl.pem: a CRL signed by the CA that revokes the "revoked" client certificate; crl-all.pem: that CRL and
  the intermediate's (empty) one.

Keys are ECDSA P-256 (instant to generate; every client the tests use speaks ECDSA). Validity
windows are relative to now, so nothing expires between a run and the next. Pki.issue_server(),
Pki.write_crl() and Pki.issue_client() make more for the tests that change files under a running broker;
Authority(directory, stem, cn) is a further root CA with issue_server(), issue_client() and crl() of its own
(to rotate the CA under a running broker).
"""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_PASSWORD = "correct horse battery staple"

# Client certificates that a listener trusting ca.pem (with crl.pem) accepts.
VALID_CLIENTS = ("alice", "san", "spare", "chained")
# Client certificates it must refuse, with the words of OpenSSL's verify error for each and petrel's
# failure label ($SYS/broker/listeners/<name>/failures/<label>).
INVALID_CLIENTS = {
    "self_signed": ("self-signed certificate", "certificate_self_signed"),
    "other_ca": ("unable to get local issuer certificate", "certificate_unknown_issuer"),
    "expired": ("certificate has expired", "certificate_expired"),
    "not_yet_valid": ("certificate is not yet valid", "certificate_not_yet_valid"),
    "revoked": ("certificate revoked", "certificate_revoked"),
    "server_eku": ("unsupported certificate purpose", "certificate_wrong_purpose"),
}

SAN_DNS = "device-7.example.com"
SAN_EMAIL = "carol@example.com"

_DAY = datetime.timedelta(days=1)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _name(cn: str, org: str = "petrel tests") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key, password: str | None = None) -> bytes:
    enc = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Issued:
    """A certificate and its key on disk."""
    cert: Path
    key: Path
    x509: x509.Certificate

    @property
    def serial(self) -> int:
        return self.x509.serial_number

    @property
    def der(self) -> bytes:
        return self.x509.public_bytes(serialization.Encoding.DER)


class Authority:
    """A self-signed CA that issues certificates and CRLs."""

    def __init__(self, directory: Path, stem: str, cn: str, parent: "Authority | None" = None):
        """A root CA, or with `parent` an intermediate CA signed by it."""
        self.key = _key()
        now = _now()
        self.name = _name(cn)
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        b = (x509.CertificateBuilder()
             .subject_name(self.name).issuer_name(parent.name if parent else self.name)
             .public_key(self.key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - _DAY).not_valid_after(now + 3650 * _DAY)
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=True, crl_sign=True,
                                          encipher_only=False, decipher_only=False), critical=True)
             .add_extension(ski, critical=False))
        if parent:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()),
                                critical=False)
        self.x509 = b.sign(parent.key if parent else self.key, hashes.SHA256())
        self.cert = directory / f"{stem}.pem"
        self.key_file = directory / f"{stem}.key"
        self.cert.write_bytes(_cert_pem(self.x509))
        self.key_file.write_bytes(_key_pem(self.key))

    def issue(self, path_stem: Path, cn: str, *, eku=(ExtendedKeyUsageOID.CLIENT_AUTH,), sans=(),
              not_before: datetime.datetime | None = None, not_after: datetime.datetime | None = None,
              org: str = "petrel tests", key=None, chain: bytes = b"") -> Issued:
        """Writes <path_stem>.pem and .key: a leaf certificate signed by this CA (followed in the .pem file by
        `chain`, PEM certificates of intermediate CAs)."""
        key = key or _key()
        now = _now()
        b = (x509.CertificateBuilder()
             .subject_name(_name(cn, org)).issuer_name(self.name)
             .public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(not_before or now - _DAY).not_valid_after(not_after or now + 365 * _DAY)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                          crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                            critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        return _write(path_stem, cert, key, chain)

    def issue_server(self, path_stem: Path, org: str = "petrel tests") -> Issued:
        """A server certificate for localhost / 127.0.0.1 (serverAuth) signed by this CA."""
        return self.issue(path_stem, "localhost", eku=(ExtendedKeyUsageOID.SERVER_AUTH,),
                          sans=(x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
                          org=org)

    def issue_client(self, path_stem: Path, cn: str) -> Issued:
        """A client certificate (clientAuth) signed by this CA."""
        return self.issue(path_stem, cn)

    def crl(self, path: Path, revoked_serials) -> Path:
        """Writes a CRL (valid from a minute ago for a year) revoking `revoked_serials`."""
        now = _now()
        b = (x509.CertificateRevocationListBuilder()
             .issuer_name(self.name)
             .last_update(now - datetime.timedelta(minutes=1))
             .next_update(now + 365 * _DAY)
             .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                            critical=False))
        for serial in revoked_serials:
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
                                          .serial_number(serial)
                                          .revocation_date(now - datetime.timedelta(minutes=1))
                                          .build())
        path.write_bytes(b.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        return path


def _write(path_stem: Path, cert: x509.Certificate, key, chain: bytes = b"") -> Issued:
    cert_path, key_path = path_stem.with_name(path_stem.name + ".pem"), path_stem.with_name(path_stem.name + ".key")
    cert_path.write_bytes(_cert_pem(cert) + chain)
    key_path.write_bytes(_key_pem(key))
    return Issued(cert_path, key_path, cert)


def _self_signed(path_stem: Path, cn: str) -> Issued:
    key = _key()
    now = _now()
    name = _name(cn)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY).not_valid_after(now + 365 * _DAY)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    return _write(path_stem, cert, key)


class Pki:
    """Everything the TLS tests need, written into `directory` (see the module docstring)."""

    KEY_PASSWORD = KEY_PASSWORD

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.authority = Authority(self.dir, "ca", "petrel test CA")
        self.ca = self.authority.cert
        self.other_authority = Authority(self.dir, "other-ca", "some other CA")
        self.other_ca = self.other_authority.cert

        # An intermediate CA signed by the CA: it signs server-chained (whose .pem holds the leaf and the
        # intermediate) and the "chained" client certificate (likewise).
        self.intermediate = Authority(self.dir, "intermediate-ca", "petrel test intermediate CA", self.authority)
        self.server = self.issue_server(self.dir / "server")
        inter_pem = _cert_pem(self.intermediate.x509)
        self.server_chained = self.intermediate.issue(
            self.dir / "server-chained", "localhost", eku=(ExtendedKeyUsageOID.SERVER_AUTH,),
            sans=(x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))), chain=inter_pem)
        self.server_key_encrypted = self.dir / "server-encrypted.key"
        server_key = serialization.load_pem_private_key(self.server.key.read_bytes(), None)
        self.server_key_encrypted.write_bytes(_key_pem(server_key, KEY_PASSWORD))

        now = _now()
        ca, d = self.authority, self.dir
        self.clients: dict[str, Issued] = {
            "alice": ca.issue(d / "client-alice", "alice"),
            "san": ca.issue(d / "client-san", "carol",
                            sans=(x509.DNSName(SAN_DNS), x509.RFC822Name(SAN_EMAIL))),
            "spare": ca.issue(d / "client-spare", "dave"),
            "chained": self.intermediate.issue(d / "client-chained", "erin", chain=inter_pem),
            "self_signed": _self_signed(d / "client-self_signed", "alice"),
            "other_ca": self.other_authority.issue(d / "client-other_ca", "alice"),
            "expired": ca.issue(d / "client-expired", "alice", not_before=now - 30 * _DAY,
                                not_after=now - _DAY),
            "not_yet_valid": ca.issue(d / "client-not_yet_valid", "alice", not_before=now + 30 * _DAY,
                                      not_after=now + 60 * _DAY),
            "revoked": ca.issue(d / "client-revoked", "alice"),
            "server_eku": ca.issue(d / "client-server_eku", "alice", eku=(ExtendedKeyUsageOID.SERVER_AUTH,)),
        }
        assert set(self.clients) == set(VALID_CLIENTS) | set(INVALID_CLIENTS)
        self.crl = self.write_crl(self.dir / "crl.pem", [self.clients["revoked"].serial])
        # With CRL checking, a leaf's issuer must have a CRL too: crl-all.pem holds the CA's and the
        # intermediate's (which revokes nothing).
        self.crl_all = self.dir / "crl-all.pem"
        self.crl_all.write_bytes(self.crl.read_bytes() +
                                 self.intermediate.crl(self.dir / "crl-intermediate.pem", []).read_bytes())

    def issue_server(self, path_stem: Path, org: str = "petrel tests") -> Issued:
        """A new server certificate and key for localhost / 127.0.0.1 (serverAuth), signed by the CA."""
        return self.authority.issue_server(path_stem, org)

    def issue_client(self, path_stem: Path, cn: str) -> Issued:
        """A new valid client certificate (clientAuth), signed by the CA."""
        return self.authority.issue_client(path_stem, cn)

    def write_crl(self, path: Path, revoked_serials) -> Path:
        """A CRL signed by the CA revoking `revoked_serials`."""
        return self.authority.crl(path, revoked_serials)
