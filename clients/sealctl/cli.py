"""The officials' tool: ``sealctl login``, ``whoami``, ``seals``, ``apply``, ``sign``, ``verify``.

State (``--state DIR`` or ``SEALCTL_STATE``): ``token.json`` (the DPoP-bound access token),
``key.json`` (a reference to the PKCS#12 file, never the key) and ``dpop-nonce.json`` (each hub's
last DPoP nonce, RFC 9449 §8, so a run's first proof needs no retry); the password is asked again for
each call that signs a DPoP proof (``--password``, ``SEALCTL_PASSWORD`` or a prompt).

Language (``--lang zh|en``, ``SEALCTL_LANG``, the locale, else Chinese): the one rule is in ``lang``.
"""
from __future__ import annotations

import getpass
import json
import os
import sys
import time

import click

from . import hub as hubapi
from . import lang
from .keys import KeyUnavailable, Pkcs12Key, open_key
from .lang import t

DEFAULT_CLIENT_ID = "sealctl"


def _password(given: str | None) -> str:
    if given is not None:
        return given
    if os.environ.get("SEALCTL_PASSWORD"):
        return os.environ["SEALCTL_PASSWORD"]
    if not sys.stdin.isatty():
        raise click.ClickException(t("password_needed"))
    return getpass.getpass(t("password_prompt"))


@click.group()
@click.option("--state", "state_dir", metavar="DIR", help="state directory (default: $SEALCTL_STATE)")
@click.option("--lang", "language", type=click.Choice(lang.LANGUAGES), default=None,
              help="language of messages, and of the hub's answers: zh (default) or en "
                   "(default: $SEALCTL_LANG, else the locale: LC_ALL, LC_MESSAGES, LANG)")
@click.pass_context
def cli(ctx, state_dir, language):
    """The officials' tool: sign in with your certificate, then act at the hub.

    Messages, and the hub's refusals, are in one language: --lang, else SEALCTL_LANG, else the
    locale if it names zh or en, else Simplified Chinese."""
    lang.choose(language)
    ctx.obj = hubapi.State(state_dir)


@cli.command()
@click.option("--hub", required=True, metavar="URL", help="the hub's issuer URL")
@click.option("--p12", required=True, type=click.Path(dir_okay=False), help="your PKCS#12 file")
@click.option("--password", default=None, help="its password (or SEALCTL_PASSWORD, or a prompt)")
@click.option("--client-id", default=DEFAULT_CLIENT_ID, envvar="SEALCTL_CLIENT_ID", show_default=True,
              help="the client_id the hub registered for this tool")
@click.option("--state", "state_dir", metavar="DIR", help="state directory (default: $SEALCTL_STATE)")
@click.pass_obj
def login(state, hub, p12, password, client_id, state_dir):
    """Sign in with the certificate (JWT bearer grant, DPoP-bound token)."""
    state = hubapi.State(state_dir) if state_dir else state
    key = Pkcs12Key(p12, _password(password))
    token = hubapi.login(hub, key, client_id, state.nonces())
    state.save("key.json", key.reference())
    state.save("token.json", token)
    click.echo(json.dumps({"hub": token["hub"], "expires_at": token["expires_at"]}))


@cli.command()
@click.option("--password", default=None, help="the PKCS#12 password (or SEALCTL_PASSWORD, or a prompt)")
@click.option("--state", "state_dir", metavar="DIR", help="state directory (default: $SEALCTL_STATE)")
@click.pass_obj
def whoami(state, password, state_dir):
    """Who the hub says I am (GET /api/official with DPoP)."""
    state = hubapi.State(state_dir) if state_dir else state
    token, key = _signed_in(state, password)
    click.echo(json.dumps(hubapi.call(token, key, "GET", "/api/official", state.nonces()), ensure_ascii=False))


def _signed_in(state: hubapi.State, password: str | None):
    token, ref = state.load("token.json"), state.load("key.json")
    if not token or not ref:
        raise click.ClickException(t("not_signed_in"))
    if token.get("expires_at", 0) <= time.time():
        raise click.ClickException(t("expired"))
    return token, open_key(ref, _password(password))


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise click.ClickException(t("cannot_read", path=path, error=exc.strerror)) from exc


def _write(path: str, data: bytes) -> None:
    tmp = f"{path}.partial"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise click.ClickException(t("cannot_write", path=path, error=exc.strerror)) from exc


_password_option = click.option("--password", default=None,
                                help="the PKCS#12 password (or SEALCTL_PASSWORD, or a prompt)")
_state_option = click.option("--state", "state_dir", metavar="DIR", help="state directory (default: $SEALCTL_STATE)")


@cli.command()
@_password_option
@_state_option
@click.pass_obj
def seals(state, password, state_dir):
    """The seals I may apply now (JSON)."""
    state = hubapi.State(state_dir) if state_dir else state
    token, key = _signed_in(state, password)
    click.echo(json.dumps(hubapi.call(token, key, "GET", "/api/seals", state.nonces())["seals"], ensure_ascii=False))


@cli.command()
@click.option("--seal", "seal_id", required=True, type=int, help="the seal's id (see 'sealctl seals')")
@click.option("--in", "src", required=True, type=click.Path(dir_okay=False), help="the PDF to seal")
@click.option("--out", "dst", required=True, type=click.Path(dir_okay=False), help="where to write the sealed PDF")
@click.option("--page", type=int, default=None, help="page for the stamp, from 1 (default: the last)")
@click.option("--x", type=float, default=None, help="stamp position from the page's left edge, points")
@click.option("--y", type=float, default=None, help="stamp position from the page's bottom edge, points")
@_password_option
@_state_option
@click.pass_obj
def apply(state, seal_id, src, dst, page, x, y, password, state_dir):
    """Seal a PDF: a visible stamp and a PAdES signature with the hub's trusted time."""
    state = hubapi.State(state_dir) if state_dir else state
    token, key = _signed_in(state, password)
    params = {k: v for k, v in (("page", page), ("x", x), ("y", y)) if v is not None}
    resp = hubapi.call_raw(token, key, "POST", f"/api/seals/{seal_id}/apply", body=_read(src, "the PDF"),
                           content_type="application/pdf", params=params, nonces=state.nonces())
    _write(dst, resp.content)
    click.echo(json.dumps({"application": resp.headers.get("Seal-Application"), "out": dst}))


@cli.command()
@click.option("--seal", "seal_id", required=True, type=int, help="the seal's id (see 'sealctl seals')")
@click.option("--in", "src", required=True, type=click.Path(dir_okay=False), help="the file to sign")
@click.option("--out", "dst", required=True, type=click.Path(dir_okay=False), help="the signature (.p7s, DER)")
@_password_option
@_state_option
@click.pass_obj
def sign(state, seal_id, src, dst, password, state_dir):
    """A detached CMS signature (DER) over the exact bytes of any file."""
    state = hubapi.State(state_dir) if state_dir else state
    token, key = _signed_in(state, password)
    resp = hubapi.call_raw(token, key, "POST", f"/api/seals/{seal_id}/sign", body=_read(src, "the file"),
                           content_type="application/octet-stream", nonces=state.nonces())
    _write(dst, resp.content)
    click.echo(json.dumps({"application": resp.headers.get("Seal-Application"), "out": dst}))


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--signature", type=click.Path(dir_okay=False), default=None, help="the detached signature (.p7s)")
@click.option("--hub", default=None, metavar="URL", help="the hub (default: the one signed in to)")
@_state_option
@click.pass_obj
def verify(state, path, signature, hub, state_dir):
    """Verify a sealed PDF, or a file and its detached signature, at the hub (no sign-in needed).
    Exit 0 valid, 1 invalid, 2 indeterminate."""
    state = hubapi.State(state_dir) if state_dir else state
    hub = hub or (state.load("token.json") or {}).get("hub")
    if not hub:
        raise click.ClickException(t("which_hub"))
    _, report = hubapi.verify(hub, _read(path, "the file"), _read(signature, "the signature") if signature else None)
    click.echo(json.dumps(report, ensure_ascii=False))
    raise SystemExit({"valid": 0, "invalid": 1}.get(report.get("verdict"), 2))


def main(argv=None) -> int:
    try:
        cli.main(args=argv, prog_name="sealctl", standalone_mode=False)
    except (hubapi.HubError, KeyUnavailable) as exc:
        click.echo(f"sealctl: {exc}", err=True)
        return 1
    except click.ClickException as exc:
        click.echo(f"sealctl: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo(f"sealctl: {t('aborted')}", err=True)
        return 1
    except SystemExit as exc:  # verify's verdict
        return int(exc.code or 0)
    return 0
