"""The hub's certificate authorities in ``<keys>/ca/``: a root CA and an issuing CA for officials.

Layout: ``ca.json`` lists every CA (id, role, issuer, key type, creation time); ``<id>.crt.pem``
holds its certificate and ``<id>.key.pem`` its private key (PKCS#8, encrypted with
IDP_KEYS_PASSPHRASE when set). The root's key signs only the issuing CA's certificate and the
root's CRL (which lists revoked issuing CAs); the issuing CA signs officials' certificates and
its own CRL. Writers take the directory's lock, so several nodes running ``idp init`` at once
create one hierarchy. Profiles follow RFC 5280 §4.2.1 (basicConstraints, keyUsage, SKI/AKI).
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..keystore.files import load_private_key_pem, locked, private_key_pem, read_json, write_json, write_private

KEY_TYPES = ("ec-p256", "rsa-3072")
INDEX = "ca.json"
ROOT_DAYS = 20 * 365
ISSUING_DAYS = 10 * 365
ISSUING_CA_EKU = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION,
                  ExtendedKeyUsageOID.TIME_STAMPING]


class CaError(Exception):
    """The CA files are missing or cannot be opened (one clear line for the operator)."""


@dataclass(frozen=True)
class Authority:
    id: str
    role: str  # root | issuing
    issuer: str  # id of the CA that signed this one (itself for the root)
    certificate: x509.Certificate
    key_path: Path

    def private_key(self, passphrase: str | None):
        try:
            return load_private_key_pem(self.key_path.read_bytes(), passphrase)
        except (OSError, ValueError) as exc:
            raise CaError(f"CA {self.id}: {exc}") from exc

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class Authorities:
    """Every hub CA; ``issuing`` is the one that signs new certificates."""

    by_id: dict[str, Authority]
    root: Authority
    issuing: Authority

    def chain(self) -> list[Authority]:
        """Issuing CA first, then the root: the order of a certificate chain."""
        return [self.issuing, self.root]


def crl_url(base: str, ca_id: str) -> str:
    return f"{base}/pki/crl/{ca_id}.crl"


def cert_url(base: str, ca_id: str) -> str:
    return f"{base}/pki/ca/{ca_id}.crt"


def generate_key(key_type: str):
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise CaError(f"unsupported key type {key_type!r} (choose one of {', '.join(KEY_TYPES)})")


def ca_dir(keys_dir: Path) -> Path:
    return Path(keys_dir) / "ca"


def _name(organization: str, common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca_certificate(subject: x509.Name, key, issuer: x509.Certificate | None, issuer_key, *, path_length: int,
                    days: int, base_url: str, issuer_id: str | None) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    if issuer is None:  # self-signed root
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        not_after = now + dt.timedelta(days=days)
    else:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value)
        not_after = min(now + dt.timedelta(days=days), issuer.not_valid_after_utc)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(ski, critical=False)
               .add_extension(aki, critical=False))
    if issuer is not None:
        # What the issuing CA certifies, and where its status is published: officials' login keys
        # (clientAuth), seals' document signatures (emailProtection: OpenSSL's and NSS's S/MIME signing
        # checks carry extendedKeyUsage down the chain, so without it `openssl cms -verify` refuses a
        # seal's signature as "unsuitable certificate purpose") and the hub's TSA (timeStamping).
        builder = (builder
                   .add_extension(x509.ExtendedKeyUsage(ISSUING_CA_EKU), critical=False)
                   .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                       full_name=[x509.UniformResourceIdentifier(crl_url(base_url, issuer_id))],
                       relative_name=None, reasons=None, crl_issuer=None)]), critical=False)
                   .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                       x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                       x509.UniformResourceIdentifier(cert_url(base_url, issuer_id)))]), critical=False))
    return builder.sign(issuer_key, hashes.SHA256())


def _ca_id(prefix: str, cert: x509.Certificate) -> str:
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    return f"{prefix}-{ski[:8].hex()}"


def _read_index(d: Path) -> dict:
    p = d / INDEX
    return read_json(p) if p.exists() else {"authorities": []}


def _current(index: dict, role: str) -> dict | None:
    entries = [a for a in index["authorities"] if a["role"] == role]
    return entries[-1] if entries else None


def _store(d: Path, cert: x509.Certificate, key, passphrase: str | None, ca_id: str) -> None:
    # Files first, index last: the index never names a file that is not there.
    write_private(d / f"{ca_id}.key.pem", private_key_pem(key, passphrase))
    write_private(d / f"{ca_id}.crt.pem", cert.public_bytes(serialization.Encoding.PEM))


def create_missing(keys_dir: Path, passphrase: str | None, *, key_type: str, base_url: str,
                   organization: str) -> list[dict]:
    """Create the root and the issuing CA if missing; returns the index entries created."""
    created = []
    with locked(ca_dir(keys_dir)) as d:
        index = _read_index(d)
        now = int(time.time())
        year = time.gmtime(now).tm_year
        root_entry = _current(index, "root")
        if root_entry is None:
            key = generate_key(key_type)
            cert = _ca_certificate(_name(organization, f"{organization} Root CA {year}"), key, None, key,
                                   path_length=1, days=ROOT_DAYS, base_url=base_url, issuer_id=None)
            ca_id = _ca_id("root", cert)
            _store(d, cert, key, passphrase, ca_id)
            root_entry = {"id": ca_id, "role": "root", "issuer": ca_id, "key_type": key_type, "created_at": now}
            index["authorities"].append(root_entry)
            created.append(root_entry)
        if _current(index, "issuing") is None:
            root_cert = x509.load_pem_x509_certificate((d / f"{root_entry['id']}.crt.pem").read_bytes())
            try:
                root_key = load_private_key_pem((d / f"{root_entry['id']}.key.pem").read_bytes(), passphrase)
            except ValueError as exc:
                raise CaError(f"CA {root_entry['id']}: {exc}") from exc
            key = generate_key(key_type)
            cert = _ca_certificate(_name(organization, f"{organization} Officials CA {year}"), key, root_cert,
                                   root_key, path_length=0, days=ISSUING_DAYS, base_url=base_url,
                                   issuer_id=root_entry["id"])
            ca_id = _ca_id("officials", cert)
            _store(d, cert, key, passphrase, ca_id)
            entry = {"id": ca_id, "role": "issuing", "issuer": root_entry["id"], "key_type": key_type,
                     "created_at": now}
            index["authorities"].append(entry)
            created.append(entry)
        if created:
            write_json(d / INDEX, index)
    return created


_cache: dict[str, tuple[int, Authorities]] = {}
_cache_lock = threading.Lock()


def load_authorities(keys_dir: Path) -> Authorities:
    """The CA certificates (not their keys), re-read when ``ca.json`` changes on disk."""
    d = ca_dir(keys_dir)
    try:
        mtime = (d / INDEX).stat().st_mtime_ns
    except FileNotFoundError as exc:
        raise CaError(f"{d / INDEX} is missing; run 'idp init'") from exc
    key = str(d)
    with _cache_lock:
        hit = _cache.get(key)
        if hit and hit[0] == mtime:
            return hit[1]
        by_id = {}
        for entry in _read_index(d)["authorities"]:
            cert = x509.load_pem_x509_certificate((d / f"{entry['id']}.crt.pem").read_bytes())
            by_id[entry["id"]] = Authority(entry["id"], entry["role"], entry["issuer"], cert,
                                           d / f"{entry['id']}.key.pem")
        roots = [a for a in by_id.values() if a.role == "root"]
        issuing = [a for a in by_id.values() if a.role == "issuing"]
        if not roots or not issuing:
            raise CaError(f"{d / INDEX} lists no root or no issuing CA; run 'idp init'")
        result = Authorities(by_id, roots[-1], issuing[-1])
        _cache[key] = (mtime, result)
        return result
