"""``idp seals``: the operators' seal registry (create, authorize, suspend, resume, revoke, list,
export the image) and ``verify``. Each command prints one JSON line; a refusal is one line on stderr,
exit 1."""
from __future__ import annotations

import datetime as dt
import os
import sys

import click
from flask.cli import with_appcontext

from ..cli import emit, refusals
from ..pki.ca import CaError

_refusals = refusals(CaError)


def _keys() -> None:
    from ..cli import _ensure_keys

    _ensure_keys()  # the data key encrypts the seal's private key


def _read_image(path: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(limit + 1)  # one byte more than allowed: the service sees it is too large
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None


def _moment(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.ClickException(f"--compromised-at {value!r} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise click.ClickException("--compromised-at needs a time zone (e.g. 2026-03-01T08:00:00Z or +08:00)")
    return moment


@click.group("seals")
def seals_group():
    """Departments' electronic approval seals (审批专用章)."""


@seals_group.command("create")
@click.option("--department", required=True, help="department code")
@click.option("--name", required=True, help="the seal's name, e.g. 本溪市市场监督管理局行政审批专用章")
@click.option("--type", "seal_type", default="审批专用章", show_default=True, help="the seal's purpose")
@click.option("--image", type=click.Path(dir_okay=False), help="the stamp as a PNG (default: generated)")
@with_appcontext
@_refusals
def seals_create(department, name, seal_type, image):
    """Create a seal: its key, its document-signing certificate and its image."""
    from flask import current_app

    from .service import create_seal, describe

    data = _read_image(image, current_app.config["SEAL_IMAGE_MAX_BYTES"]) if image else None
    _keys()
    emit(describe(create_seal(department, name, seal_type, data)))


@seals_group.command("authorize")
@click.option("--seal", "seal_id", required=True, help="the seal's id")
@click.option("--username", required=True, help="an official of the seal's department")
@with_appcontext
@_refusals
def seals_authorize(seal_id, username):
    """Allow an official to apply the seal."""
    from .service import authorize

    emit(authorize(seal_id, username))


@seals_group.command("deauthorize")
@click.option("--seal", "seal_id", required=True, help="the seal's id")
@click.option("--username", required=True, help="the official")
@with_appcontext
@_refusals
def seals_deauthorize(seal_id, username):
    """Withdraw an official's authorization."""
    from .service import deauthorize

    emit(deauthorize(seal_id, username))


@seals_group.command("suspend")
@click.argument("seal_id")
@with_appcontext
@_refusals
def seals_suspend(seal_id):
    """Stop the seal from being applied until it is resumed."""
    from .service import describe, suspend

    emit(describe(suspend(seal_id)))


@seals_group.command("resume")
@click.argument("seal_id")
@with_appcontext
@_refusals
def seals_resume(seal_id):
    """Let a suspended seal be applied again."""
    from .service import describe, resume

    emit(describe(resume(seal_id)))


@seals_group.command("revoke")
@click.argument("seal_id")
@click.option("--reason", default="unspecified", show_default=True,
              help="RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded, "
                   "cessationOfOperation, privilegeWithdrawn")
@click.option("--compromised-at", "compromised_at", help="ISO 8601 time the key was compromised (keyCompromise)")
@with_appcontext
@_refusals
def seals_revoke(seal_id, reason, compromised_at):
    """Retire the seal for good and revoke its certificate (the CRL is published)."""
    from .service import describe, revoke

    emit(describe(revoke(seal_id, reason, _moment(compromised_at))))


@seals_group.command("list")
@click.option("--department", help="only this department's seals")
@with_appcontext
@_refusals
def seals_list(department):
    """The seals, with the officials authorized for each (JSON)."""
    from .service import describe, list_seals

    emit([describe(s, with_officials=True) for s in list_seals(department)])


@seals_group.command("image")
@click.argument("seal_id")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="FILE.png (not overwritten)")
@with_appcontext
@_refusals
def seals_image(seal_id, out):
    """Write the seal's stamp (PNG) to a new file."""
    from .service import get_seal

    seal = get_seal(seal_id)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise click.ClickException(f"{out} exists; choose another file (nothing is overwritten)") from None
    except OSError as exc:
        raise click.ClickException(f"cannot create {out}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(seal.image_png)
    emit({"id": seal.id, "out": out, "bytes": len(seal.image_png)})


@seals_group.command("verify")
@click.argument("path", metavar="FILE")
@click.option("--signature", metavar="FILE.p7s", help="the file's detached CMS signature (DER); not for PDFs")
@with_appcontext
@_refusals
def seals_verify(path, signature):
    """Verify a sealed PDF, or any file with its detached signature: the JSON report on stdout,
    exit 0 valid, 1 invalid, 2 indeterminate.

    A file that cannot be read is not a verdict: one line on stderr, nothing on stdout, exit 1 (like
    every refusal of ``idp``), so a script that accepts only exit 0 never accepts it.
    """
    from .verification import verify

    if signature is not None:
        sig = _read_whole(signature, "the signature")
        try:
            with open(path, "rb") as data:  # streamed: a detached signature may cover a large file
                report = verify(data, sig)
        except OSError as exc:
            raise click.ClickException(f"cannot read the file {path}: {exc.strerror}") from None
    else:
        report = verify(_read_whole(path, "the file"))
    emit(report.to_dict())
    sys.exit(report.exit_code)


def _read_whole(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise click.ClickException(f"cannot read {what} {path}: {exc.strerror}") from None


COMMANDS = (seals_group,)
