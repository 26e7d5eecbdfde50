"""``idp pki``: issue, revoke and list officials' certificates; print the CA chain."""
from __future__ import annotations

import contextlib
import os

import click
from flask.cli import with_appcontext

from ..cli import refusals
from .ca import CaError


_refusals = refusals(CaError)  # domain refusals and CA problems as one-line CLI errors


def _emit(obj) -> None:
    from ..cli import emit

    emit(obj)


@contextlib.contextmanager
def _new_file(path: str):
    """Reserve ``path`` before anything is issued (never overwrite a key or certificate); remove it
    again if issuance fails, so the file exists exactly when the certificate was recorded."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; choose another file (nothing is overwritten)") from None
    except OSError as exc:
        raise click.ClickException(f"cannot create {path}: {exc.strerror}") from None
    box = []
    try:
        yield box
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    with os.fdopen(fd, "wb") as fh:
        fh.write(box[0])


@click.group("pki")
def pki_group():
    """The officials' certificate authority."""


@pki_group.command("issue")
@click.option("--username", required=True, help="the official's username")
@click.option("--out", "out", required=True, help="FILE.p12 (key generated) or FILE.pem (with --csr)")
@click.option("--password", help="protects the PKCS#12 file (key generated here)")
@click.option("--csr", "csr", type=click.Path(exists=True, dir_okay=False),
              help="the official's PKCS#10 request (PEM or DER); the official keeps the key")
@click.option("--department", help="department code, when the official serves in several")
@with_appcontext
@_refusals
def pki_issue(username, out, password, csr, department):
    """Issue a login certificate to an official: a PKCS#12 file, or a certificate for a request."""
    from .service import issue_from_csr, issue_pkcs12

    if csr and password:
        raise click.ClickException("--password is for a generated key; with --csr the official keeps the key")
    if not csr and not password:
        raise click.ClickException("give --password (a key is generated) or --csr FILE (the official's request)")
    data = None
    if csr:
        with open(csr, "rb") as fh:
            data = fh.read(1024 * 1024)
    with _new_file(out) as box:
        if csr:
            summary, content = issue_from_csr(username, data, department=department)
        else:
            summary, content = issue_pkcs12(username, password, department=department)
        box.append(content)
    _emit(summary)


@pki_group.command("register")
@click.option("--username", required=True, help="the official's username")
@click.option("--cert", "cert", required=True, type=click.Path(exists=True, dir_okay=False),
              help="a certificate from a CA in IDP_PKI_EXTERNAL_CA_FILE (PEM or DER)")
@click.option("--department", help="department code, when the official serves in several")
@with_appcontext
@_refusals
def pki_register(username, cert, department):
    """Map an external CA's certificate to an official by its fingerprint."""
    from .service import register_external

    with open(cert, "rb") as fh:
        data = fh.read(1024 * 1024)
    _emit(register_external(username, data, department=department))


@pki_group.command("revoke")
@click.argument("serial")
@click.option("--reason", default="unspecified", show_default=True,
              help="RFC 5280 §5.3.1: unspecified, keyCompromise, affiliationChanged, superseded, "
                   "cessationOfOperation, privilegeWithdrawn")
@with_appcontext
@_refusals
def pki_revoke(serial, reason):
    """Revoke a certificate; its CA's CRL is published again at once."""
    from .service import revoke_certificate

    _emit(revoke_certificate(serial, reason))


@pki_group.command("list")
@click.option("--username", help="only this person's certificates")
@with_appcontext
@_refusals
def pki_list(username):
    """Every certificate (JSON array): serial, holder, status, validity."""
    from .service import list_certificates

    _emit(list_certificates(username))


@pki_group.command("ca-cert")
@with_appcontext
@_refusals
def pki_ca_cert():
    """The CA chain in PEM: the issuing CA, then the root."""
    from .service import chain_pem

    click.echo(chain_pem(), nl=False)
