"""The officials' login certificate profile (RFC 5280 §4.2.1) and what goes in and out of issuance:
requests (PKCS#10, RFC 2986), public-key strength, PKCS#12 files (RFC 7292). All X.509 work is
``cryptography``'s; nothing here parses DER by hand."""
from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from ..errors import DomainError
from .ca import Authority, cert_url, crl_url

MIN_RSA_BITS = 2048
ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
MAX_CSR_BYTES = 64 * 1024
MIN_PKCS12_PASSWORD = 8
PKCS12_KDF_ROUNDS = 600_000  # PBKDF2-HMAC-SHA256 iterations (OWASP's 2023 figure for SHA-256)


def official_subject(*, person_name: str, department_name: str, organization: str) -> x509.Name:
    """C=CN, O=<city government>, OU=<department>, CN=<the official's name> (UTF8String)."""
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, department_name),
        x509.NameAttribute(NameOID.COMMON_NAME, person_name),
    ])


def check_public_key(public_key) -> None:
    """Refuse keys too weak to certify: RSA below 2048 bits or with a small exponent, EC curves other
    than P-256/P-384/P-521 (also what the path validator accepts), and any other algorithm."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise DomainError(f"the key is too weak: RSA {public_key.key_size} bits (at least {MIN_RSA_BITS})")
        if public_key.public_numbers().e < 65537:
            raise DomainError("the key is too weak: RSA public exponent below 65537")
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ALLOWED_CURVES):
            raise DomainError(f"the key's curve {public_key.curve.name} is not allowed (P-256, P-384 or P-521)")
        return
    raise DomainError("the key type is not allowed (RSA of at least 2048 bits, or EC P-256/P-384/P-521)")


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """A PKCS#10 request (PEM or DER) whose self-signature proves possession of the key (RFC 2986 §3)."""
    if len(data) > MAX_CSR_BYTES:
        raise DomainError("the certificate request file is too large")
    try:
        csr = (x509.load_pem_x509_csr(data) if data.lstrip().startswith(b"-----BEGIN")
               else x509.load_der_x509_csr(data))
    except ValueError as exc:
        raise DomainError("the file is not a PEM or DER certificate signing request (PKCS#10)") from exc
    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError, UnsupportedAlgorithm):  # a key or signature algorithm we do not know
        valid = False
    if not valid:
        raise DomainError("the certificate request's signature does not verify")
    return csr


def spki_sha256(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


KEY_USAGE_SIGNING = x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                  data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                  crl_sign=False, encipher_only=False, decipher_only=False)


def build_end_entity(*, issuing: Authority, ca_key, public_key, subject: x509.Name, days: int, base_url: str,
                     extended_key_usage: list | None, eku_critical: bool = False) -> x509.Certificate:
    """An end-entity certificate of the hub's issuing CA: keyUsage digitalSignature + nonRepudiation
    (critical), the given extendedKeyUsage (none if ``None``), CRL distribution point and caIssuers
    pointing at the hub, a 159-bit CSPRNG serial (RFC 5280 §4.1.2.2)."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    not_after = min(now + dt.timedelta(days=days), issuing.certificate.not_valid_after_utc)
    if not_after <= now:
        raise DomainError("the issuing CA has expired; a new CA is needed before issuing certificates")
    ca_ski = issuing.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuing.certificate.subject)
               .public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(KEY_USAGE_SIGNING, critical=True))
    if extended_key_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended_key_usage), critical=eku_critical)
    return (builder
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(crl_url(base_url, issuing.id))],
                relative_name=None, reasons=None, crl_issuer=None)]), critical=False)
            .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(cert_url(base_url, issuing.id)))]), critical=False)
            .sign(ca_key, hashes.SHA256()))


def build_certificate(*, issuing: Authority, ca_key, public_key, subject: x509.Name, days: int,
                      base_url: str) -> x509.Certificate:
    """An official's login certificate: TLS client authentication (extendedKeyUsage clientAuth only)
    and their own signatures (nonRepudiation)."""
    return build_end_entity(issuing=issuing, ca_key=ca_key, public_key=public_key, subject=subject, days=days,
                            base_url=base_url, extended_key_usage=[ExtendedKeyUsageOID.CLIENT_AUTH])


def seal_subject(*, seal_name: str, department_name: str, organization: str) -> x509.Name:
    """C=CN, O=<city government>, OU=<department>, CN=<the seal's name>."""
    return official_subject(person_name=seal_name, department_name=department_name, organization=organization)


def build_seal_certificate(*, issuing: Authority, ca_key, public_key, subject: x509.Name, days: int,
                           base_url: str) -> x509.Certificate:
    """A department seal's document-signing certificate: keyUsage digitalSignature + nonRepudiation
    and no extendedKeyUsage, so it cannot log in (login needs clientAuth) while ``openssl cms -verify``'s
    default S/MIME signing purpose and PDF validators (which want nonRepudiation) accept it."""
    return build_end_entity(issuing=issuing, ca_key=ca_key, public_key=public_key, subject=subject, days=days,
                            base_url=base_url, extended_key_usage=None)


def build_tsa_certificate(*, issuing: Authority, ca_key, public_key, subject: x509.Name, days: int,
                          base_url: str) -> x509.Certificate:
    """The hub's timestamp authority: extendedKeyUsage timeStamping only, critical (RFC 3161 §2.3)."""
    return build_end_entity(issuing=issuing, ca_key=ca_key, public_key=public_key, subject=subject, days=days,
                            base_url=base_url, extended_key_usage=[ExtendedKeyUsageOID.TIME_STAMPING],
                            eku_critical=True)


def check_pkcs12_password(password: str) -> None:
    if len(password or "") < MIN_PKCS12_PASSWORD:
        raise DomainError(f"the PKCS#12 password must have at least {MIN_PKCS12_PASSWORD} characters")


def to_pkcs12(*, key, cert: x509.Certificate, chain: list[x509.Certificate], password: str, name: str) -> bytes:
    """Key, certificate and chain under PBES2 (PBKDF2-SHA256, AES-256-CBC) with a SHA-256 MAC."""
    enc = (serialization.PrivateFormat.PKCS12.encryption_builder()
           .kdf_rounds(PKCS12_KDF_ROUNDS)
           .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
           .hmac_hash(hashes.SHA256())
           .build(password.encode()))
    return pkcs12.serialize_key_and_certificates(name.encode(), key, cert, chain, enc)


def pem_chain(cert: x509.Certificate, chain: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *chain])
