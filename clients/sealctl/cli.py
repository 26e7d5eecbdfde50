"""``sealctl login`` and ``sealctl whoami`` (more commands come with the seal API).

State (``--state DIR`` or ``SEALCTL_STATE``): ``token.json`` (the DPoP-bound access token) and
``key.json`` (a reference to the PKCS#12 file, never the key); the password is asked again for
each call that signs a DPoP proof (``--password``, ``SEALCTL_PASSWORD`` or a prompt).
"""
from __future__ import annotations

import getpass
import json
import os
import sys
import time

import click

from . import hub as hubapi
from .keys import KeyUnavailable, Pkcs12Key, open_key

DEFAULT_CLIENT_ID = "sealctl"


def _password(given: str | None) -> str:
    if given is not None:
        return given
    if os.environ.get("SEALCTL_PASSWORD"):
        return os.environ["SEALCTL_PASSWORD"]
    if not sys.stdin.isatty():
        raise click.ClickException("the PKCS#12 password is needed: give --password or set SEALCTL_PASSWORD")
    return getpass.getpass("PKCS#12 password: ")



@click.group()
@click.option("--state", "state_dir", metavar="DIR", help="state directory (default: $SEALCTL_STATE)")
@click.pass_context
def cli(ctx, state_dir):
    """The officials' tool: sign in with your certificate, then act at the hub."""
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
    token = hubapi.login(hub, key, client_id)
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
    token, ref = state.load("token.json"), state.load("key.json")
    if not token or not ref:
        raise click.ClickException("not signed in: run 'sealctl login' first")
    if token.get("expires_at", 0) <= time.time():
        raise click.ClickException("the sign-in has expired: run 'sealctl login' again")
    key = open_key(ref, _password(password))
    click.echo(json.dumps(hubapi.call(token, key, "GET", "/api/official"), ensure_ascii=False))


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
        click.echo("sealctl: aborted", err=True)
        return 1
    return 0
