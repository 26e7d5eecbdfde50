"""The ``idp`` command. Creating commands print JSON on stdout; errors go to stderr, exit non-zero."""
from __future__ import annotations

import json
import sys
import time

import click
from sqlalchemy.exc import InterfaceError, OperationalError
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from .config import ConfigError
from .errors import DomainError


def emit(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=None, default=str))


def _ensure_keys():
    from . import init_keys

    if "idp.keystore" not in current_app.extensions:
        try:
            init_keys(current_app._get_current_object())
        except Exception as exc:  # keystore errors: one clear line, not a trace
            raise click.ClickException(f"{exc} (run 'idp init' first?)") from exc


def refusals(*also: type[Exception]):
    """A decorator for commands: domain refusals (and the ``also`` errors) become one-line CLI errors,
    in English (operators and scripts read them, whatever a surrounding request chose)."""
    import functools

    from flask_babel import force_locale

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            with force_locale("en"):
                try:
                    return fn(*a, **kw)
                except (DomainError, *also) as exc:
                    raise click.ClickException(str(getattr(exc, "message", exc))) from exc
        return wrapper
    return decorate


_domain = refusals()


@click.command("init")
@with_appcontext
def init_command():
    """Create or upgrade the database and create missing keys and CAs. Idempotent."""
    from .keystore.service import ensure_keys
    from .migrations_lock import upgrade_database

    click.echo("creating missing keys…", err=True)
    created = ensure_keys(current_app.config)
    click.echo("upgrading the database…", err=True)
    upgrade_database()
    _ensure_keys()
    from .audit.service import record
    from .db import transaction

    with transaction():
        for k in created:
            record("key.created", actor="cli", target=f"key:{k['kid']}", detail={"alg": k["alg"]})
    ca_created = _ensure_ca()
    tsa_created = _ensure_tsa()
    from .oauth.clients import ensure_officials_tool_client

    tool_client = ensure_officials_tool_client()
    emit({"database": "up to date", "keys_created": [k["kid"] for k in created], "ca_created": ca_created,
          "tsa_created": tsa_created, "officials_tool_client_created": tool_client})


def _ensure_ca() -> list[str]:
    from .pki.ca import CaError
    from .pki.service import ensure_ca

    try:
        return [entry["id"] for entry in ensure_ca()]
    except CaError as exc:
        raise click.ClickException(str(exc)) from exc


def _ensure_tsa() -> list[str]:
    from .pki.ca import CaError
    from .seals.tsa import ensure_tsa

    try:
        return ensure_tsa()
    except CaError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="worker processes (each with its own app and database pool)")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Python threads per worker answering requests (Granian's blocking threads)")
@click.option("--worker-connections", default=1000, show_default=True, type=click.IntRange(1, 100000),
              help="connections a worker takes at once (Granian's backpressure); more wait in the backlog")
def serve_command(host, port, workers, threads, worker_connections):
    """Run the production server (Granian, WSGI)."""
    from .config import load, log_format
    from .serve import PortInUse, run

    cfg = load()
    try:
        run(host, port, workers, threads, worker_connections, log_format=log_format(cfg, serving=True))
    except PortInUse as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("users")
def users_group():
    """Citizen accounts."""


@users_group.command("create")
@click.option("--type", "kind", type=click.Choice(["citizen"]), default="citizen", show_default=True)
@click.option("--username", required=True)
@click.option("--password", required=True)
@click.option("--name")
@click.option("--id-number")
@click.option("--phone")
@click.option("--email")
@with_appcontext
@_domain
def users_create(kind, username, password, name, id_number, phone, email):
    _ensure_keys()
    from .accounts.service import create_citizen

    p = create_citizen(username=username, password=password, name=name, id_number=id_number, phone=phone, email=email)
    emit({"sub": p.sub, "username": p.username})


class _ProgressBar:
    """A click progress bar on stderr fed with (done, total); shows the rate of this run."""

    def __init__(self, label: str):
        self.label, self.bar, self.start = label, None, (0.0, 0)

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr,
                                         show_pos=True, item_show_func=lambda rate: rate)
            self.bar.__enter__()
            self.start = (time.monotonic(), done)
        elapsed = time.monotonic() - self.start[0]
        rate = f"{(done - self.start[1]) / elapsed:,.0f} rows/s" if elapsed > 0 else None
        self.bar.update(done - self.bar.pos, current_item=rate)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@users_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--report", "report_path", type=click.Path(dir_okay=False, writable=True),
              help="where refused rows are listed (line,field,reason); default FILE.rejected.csv")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 5000),
              help="rows per transaction (and per audit event)")
@with_appcontext
@_domain
def users_import(file, report_path, batch_size):
    """Import citizens from a CSV file; run it again to continue an interrupted import.

    Header: username[,name][,id_number][,phone][,email][,password_hash]. password_hash is an argon2
    PHC string stored as is; rows without one need a phone or email (password reset). Plaintext
    passwords are not accepted.
    """
    _ensure_keys()
    from .accounts.importer import import_citizens

    progress = _ProgressBar("importing rows")
    try:
        summary = import_citizens(file, report_path=report_path, batch_size=batch_size, progress=progress)
    finally:
        progress.close()
    if summary["already_finished"]:
        click.echo("this file was imported completely before: nothing to do", err=True)
    elif summary["resumed_after_line"]:
        click.echo(f"continued after line {summary['resumed_after_line']} (committed by an earlier run)", err=True)
    for warning in summary.pop("warnings"):
        click.echo(f"warning: {warning}", err=True)
    firsts = summary.pop("first_rejections")
    if summary["rejected"]:
        by_field = ", ".join(f"{k} {v}" for k, v in summary["totals"]["rejected_by_field"].items())
        click.echo(f"{summary['rejected']} rows rejected ({by_field} in all); the list is in {summary['report']}",
                   err=True)
        for line in firsts:
            click.echo(f"  {line}", err=True)
    emit(summary)


@click.group("clients")
def clients_group():
    """Relying parties (department subsites)."""


@clients_group.command("create")
@click.option("--name", required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--post-logout-redirect-uri", "post_logout", multiple=True)
@click.option("--backchannel-logout-uri")
@click.option("--frontchannel-logout-uri")
@click.option("--auth-method", default="client_secret_basic", show_default=True,
              type=click.Choice(["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]))
@click.option("--grant-type", "grant_types", multiple=True)
@click.option("--scope", "scopes", multiple=True)
@click.option("--first-party", is_flag=True)
@click.option("--jwks-file", type=click.File("r"), help="public keys for private_key_jwt")
@click.option("--id-token-alg", default="RS256", show_default=True, type=click.Choice(["RS256", "ES256"]))
@click.option("--subject-type", default="public", show_default=True, type=click.Choice(["public", "pairwise"]),
              help="pairwise: a different sub per sector (OIDC Core 8.1)")
@click.option("--sector-identifier", help="pairwise sector (a host name); default: the redirect URIs' one host")
@click.option("--dpop-bound", is_flag=True,
              help="every token request must carry a DPoP proof (RFC 9449 5.2 dpop_bound_access_tokens)")
@click.option("--require-par", is_flag=True,
              help="authorization requests only through /par (RFC 9126 6 require_pushed_authorization_requests)")
@with_appcontext
@_domain
def clients_create(name, redirect_uris, post_logout, backchannel_logout_uri, frontchannel_logout_uri, auth_method,
                   grant_types, scopes, first_party, jwks_file, id_token_alg, subject_type, sector_identifier,
                   dpop_bound, require_par):
    _ensure_keys()
    from .oauth.clients import create_client

    jwks = None
    if jwks_file is not None:
        try:
            jwks = json.load(jwks_file)
        except ValueError as exc:
            raise click.ClickException("the JWKS file is not valid JSON") from exc
    client, secret = create_client(
        name=name, redirect_uris=list(redirect_uris), post_logout_redirect_uris=list(post_logout),
        backchannel_logout_uri=backchannel_logout_uri, frontchannel_logout_uri=frontchannel_logout_uri,
        auth_method=auth_method,
        grant_types=list(grant_types) or None, scopes=list(scopes) or None, first_party=first_party,
        jwks=jwks, id_token_alg=id_token_alg, subject_type=subject_type, sector_identifier=sector_identifier,
        dpop_bound_access_tokens=dpop_bound, require_pushed_authorization_requests=require_par)
    emit({"client_id": client.client_id, "client_secret": secret,
          "dpop_bound_access_tokens": client.dpop_bound_access_tokens,
          "require_pushed_authorization_requests": client.require_pushed_authorization_requests})


@clients_group.command("dpop")
@click.argument("client_id")
@click.option("--required/--optional", "required", required=True,
              help="required: every token request must carry a DPoP proof (RFC 9449 5.2 dpop_bound_access_tokens)")
@with_appcontext
@_domain
def clients_dpop(client_id, required):
    """Require DPoP-bound tokens of a client, or not."""
    from .oauth.clients import set_dpop_bound

    client = set_dpop_bound(client_id, required)
    emit({"client_id": client.client_id, "dpop_bound_access_tokens": client.dpop_bound_access_tokens})


@clients_group.command("par")
@click.argument("client_id")
@click.option("--required/--optional", "required", required=True,
              help="required: authorization requests only through /par (RFC 9126 6)")
@with_appcontext
@_domain
def clients_par(client_id, required):
    """Require pushed authorization requests of a client, or not."""
    from .oauth.clients import set_par_required

    client = set_par_required(client_id, required)
    emit({"client_id": client.client_id,
          "require_pushed_authorization_requests": client.require_pushed_authorization_requests})


@clients_group.command("rotate-secret")
@click.argument("client_id")
@click.option("--grace-hours", type=click.IntRange(0, 720), default=24, show_default=True,
              help="hours the current secret is still accepted (0 for a leaked secret)")
@with_appcontext
@_domain
def clients_rotate_secret(client_id, grace_hours):
    """A new client secret, shown once; the current one keeps working for the grace period."""
    from .oauth.clients import rotate_secret

    client, secret = rotate_secret(client_id, grace_seconds=grace_hours * 3600)
    until = client.previous_secret_expires_at
    emit({"client_id": client.client_id, "client_secret": secret,
          "previous_secret_valid_until": until.isoformat(timespec="seconds") + "Z" if until else None})


@clients_group.command("disable")
@click.argument("client_id")
@with_appcontext
@_domain
def clients_disable(client_id):
    """Disable a subsite: it is refused everywhere, and every token issued to it is revoked."""
    from .oauth.clients import set_status

    emit(set_status(client_id, active=False))


@clients_group.command("enable")
@click.argument("client_id")
@with_appcontext
@_domain
def clients_enable(client_id):
    """Enable a disabled subsite again."""
    from .oauth.clients import set_status

    emit(set_status(client_id, active=True))


def _client_summary(c) -> dict:
    return {"client_id": c.client_id, "name": c.name, "auth_method": c.token_endpoint_auth_method,
            "grant_types": c.grant_types, "redirect_uris": c.redirect_uris,
            "post_logout_redirect_uris": c.post_logout_redirect_uris,
            "backchannel_logout_uri": c.backchannel_logout_uri, "frontchannel_logout_uri": c.frontchannel_logout_uri,
            "first_party": c.first_party, "scopes": c.scopes, "subject_type": c.subject_type,
            "sector_identifier": c.sector_identifier, "dpop_bound_access_tokens": c.dpop_bound_access_tokens,
            "require_pushed_authorization_requests": c.require_pushed_authorization_requests, "status": c.status}


@clients_group.command("update")
@click.argument("client_id")
@click.option("--name")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="replaces the registered redirect URIs")
@click.option("--post-logout-redirect-uri", "post_logout", multiple=True,
              help="replaces the registered post-logout redirect URIs")
@click.option("--backchannel-logout-uri", help='"" removes it')
@click.option("--frontchannel-logout-uri", help='"" removes it')
@click.option("--scope", "scopes", multiple=True, help="replaces the scopes the subsite may ask for")
@with_appcontext
@_domain
def clients_update(client_id, name, redirect_uris, post_logout, backchannel_logout_uri, frontchannel_logout_uri,
                   scopes):
    """Change a subsite's registration; its client_id, secret and the subjects people have there stay."""
    from .oauth.clients import update_client

    client = update_client(client_id, name=name, redirect_uris=list(redirect_uris) or None,
                           post_logout_redirect_uris=list(post_logout) or None,
                           backchannel_logout_uri=backchannel_logout_uri,
                           frontchannel_logout_uri=frontchannel_logout_uri, scopes=list(scopes) or None)
    emit(_client_summary(client))


@clients_group.command("list")
@with_appcontext
def clients_list():
    from .oauth.clients import list_clients

    emit([_client_summary(c) for c in list_clients()])


@click.group("keys")
def keys_group():
    """Signing keys and data-protection keys."""


@keys_group.command("list")
@with_appcontext
def keys_list():
    from .keystore.service import list_keys

    emit(list_keys())


@keys_group.command("rotate")
@click.option("--alg", "algs", multiple=True, type=click.Choice(["RS256", "ES256"]),
              help="rotate only these algorithms (default: all)")
@click.option("--now", "immediately", is_flag=True,
              help="emergency: the new keys sign at once instead of after IDP_KEYS_PUBLISH_AHEAD seconds "
                   "(relying parties may fail validations for a few seconds)")
@click.option("--revoke-old", is_flag=True,
              help="compromised key: implies --now, and the earlier keys leave the JWKS at once and are "
                   "deleted (every token they signed stops validating)")
@with_appcontext
def keys_rotate(algs, immediately, revoke_old):
    """Publish new keys now; they sign after IDP_KEYS_PUBLISH_AHEAD seconds, when the current ones
    retire (still published until their tokens expire)."""
    _ensure_keys()
    from .keystore.service import rotate_keys
    from .keystore.signing import ALGS

    result = rotate_keys(list(algs) or list(ALGS), immediately=immediately, revoke_old=revoke_old)
    emit({"rotated": [{"kid": k["kid"], "alg": k["alg"], "not_before": k["not_before"]} for k in result["created"]],
          "retired": [{"kid": k["kid"], "alg": k["alg"], "retired_at": k["retired_at"]} for k in result["retired"]],
          "revoked": [{"kid": k["kid"], "alg": k["alg"]} for k in result["revoked"]]})


@keys_group.command("prune")
@with_appcontext
def keys_prune():
    """Delete retired keys that no valid token can need any more."""
    _ensure_keys()
    from .keystore.service import prune_keys

    emit({"deleted": prune_keys()})


@keys_group.command("rotate-data")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100000),
              help="rows re-encrypted per transaction")
@with_appcontext
def keys_rotate_data(batch_size):
    """New data-protection key; re-encrypt every stored personal value under it.

    Resumable: run it again after an interruption and it finishes the same rotation.
    """
    _ensure_keys()
    from .accounts import rotation

    rot = rotation.start()
    label = f"{'resuming: ' if rot.resumed else ''}re-encrypting under data key {rot.key}"
    with click.progressbar(length=rot.total, label=label, file=sys.stderr) as bar:
        result = rot.run(batch_size, bar.update)
    emit(result)
    if result["remaining"]:
        raise click.ClickException(f"{result['remaining']} values are still under an older data key "
                                   f"({result['unreadable']} unreadable); run 'idp keys rotate-data' again")


@click.group("audit")
def audit_group():
    """The audit log."""


def _every_few_seconds(line, seconds: float = 2.0):
    """A progress callback for a long job: ``line(n)`` on stderr, at most every ``seconds``."""
    state = {"next": time.monotonic() + seconds}

    def progress(n):
        if time.monotonic() >= state["next"]:
            click.echo(line(n), err=True)
            state["next"] = time.monotonic() + seconds

    return progress


@audit_group.command("verify")
@with_appcontext
def audit_verify():
    """Check the hash chain, and every seal application against its audit event; exit 1 if any event
    was altered, inserted or removed, or an application's record does not match its event."""
    from .audit.service import verify_chain
    from .seals import record as seal_record

    count, broken = verify_chain(progress=_every_few_seconds(lambda n: f"audit: {n} events checked"))
    applications = seal_record.check()
    emit({"events": count, "intact": broken is None and applications.intact, "first_broken_id": broken,
          "seal_applications": applications.to_dict()})
    if broken is not None:
        click.echo(f"audit: the chain is broken at event {broken} (altered, inserted or removed)", err=True)
    if not applications.intact:
        click.echo("audit: seal applications do not match their audit events: "
                   + json.dumps(applications.to_dict()), err=True)
    if broken is not None or not applications.intact:
        sys.exit(1)


def _utc_option(ctx, param, value):
    """An ISO 8601 time with its zone (``2026-11-01T00:00:00+08:00``, ``...Z``) as naive UTC."""
    import datetime as dt

    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time (e.g. 2026-11-01T00:00:00+08:00)") from None
    if when.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no time zone: add one (+08:00, or Z for UTC)")
    return when.astimezone(dt.timezone.utc).replace(tzinfo=None)


@audit_group.command("list")
@click.option("--since", callback=_utc_option, help="events at or after this time (ISO 8601 with its zone)")
@click.option("--until", callback=_utc_option, help="events before this time")
@click.option("--action", "actions", multiple=True, help="an action (seal.applied), or a prefix ending in * (seal.*)")
@click.option("--actor", help="e.g. person:SUB, client:ID, cli")
@click.option("--target", help="e.g. seal:3, session:SID, client:ID")
@click.option("--limit", type=click.IntRange(1), help="at most this many events (the oldest that match)")
@with_appcontext
def audit_list(since, until, actions, actor, target, limit):
    """The audit events that match, oldest first, one JSON object per line (JSON Lines)."""
    from .audit.service import events

    count = 0
    for ev in events(since=since, until=until, actions=actions, actor=actor, target=target):
        if limit is not None and count >= limit:
            break
        click.echo(json.dumps({"id": ev.id, "at": ev.at.isoformat(timespec="microseconds") + "Z", "action": ev.action,
                               "actor": ev.actor, "target": ev.target, "outcome": ev.outcome, "ip": ev.ip,
                               "detail": ev.detail or {}, "hash": ev.hash}, ensure_ascii=False))
        count += 1


@users_group.command("disable")
@click.argument("username")
@with_appcontext
@_domain
def users_disable(username):
    """Disable an account: its sessions end everywhere (back-channel logout to every subsite)."""
    _ensure_keys()
    from .accounts.service import disable_person

    emit(disable_person(username))


@users_group.command("close")
@click.argument("username")
@with_appcontext
@_domain
def users_close(username):
    """Close an account on its holder's request (账号注销): sessions ended everywhere, tokens revoked,
    personal data erased; the anonymous subject and the records the law keeps remain."""
    _ensure_keys()
    from .accounts.closure import close_account
    from .accounts.service import account_named

    done = close_account(account_named(username), actor="cli")
    done.pop("front_channel")
    emit(done)


@users_group.command("enable")
@click.argument("username")
@with_appcontext
@_domain
def users_enable(username):
    """Enable a disabled account again (its revoked tokens stay revoked: the person signs in again)."""
    from .accounts.service import enable_person

    emit(enable_person(username))


@users_group.command("verify")
@click.option("--username", required=True)
@click.option("--method", required=True, help="how the real name was checked: counter (in person, ID card)")
@with_appcontext
@_domain
def users_verify(username, method):
    """Record a real-name verification (identity level 2; sign-ins reach level 2 once TOTP is enrolled)."""
    _ensure_keys()
    from .authn.identity import verify_identity

    emit(verify_identity(username, method))


@click.group("sessions")
def sessions_group():
    """SSO sessions."""


@sessions_group.command("list")
@click.option("--username", required=True)
@with_appcontext
@_domain
def sessions_list(username):
    _ensure_keys()  # a phone or ID number is looked up by its blind index (the data key)
    from .accounts.service import find_by_login
    from .sessions.logout import clients_of, live_sessions_of

    person = find_by_login(username)
    if person is None:
        raise click.ClickException(f"no account {username!r}")
    emit([{"sid": s.sid, "started": s.created_at, "last_active": s.last_seen_at, "ip": s.ip, "acr": s.acr,
           "clients": [c.client_id for c in clients_of(s)]} for s in live_sessions_of(person.id)])


@sessions_group.command("end")
@click.argument("sid", required=False)
@click.option("--username", help="end every live session of this account instead (a stolen device, say)")
@with_appcontext
@_domain
def sessions_end(sid, username):
    """End one session, or all of an account's (an operator's logout): same fan-out as any logout."""
    _ensure_keys()
    from sqlalchemy import select

    from .accounts.service import account_named
    from .db import db
    from .sessions.logout import end_sessions, live_sessions_of
    from .sessions.models import SsoSession

    if (sid is None) == (username is None):
        raise click.UsageError("give a session id, or --username")
    if username is not None:
        sessions = live_sessions_of(account_named(username).id)
        end_sessions(sessions, reason="operator", actor="cli")
        emit({"ended": [s.sid for s in sessions]})
        return
    s = db.session.execute(select(SsoSession).where(SsoSession.sid == sid)).scalars().first()
    if s is None:
        raise click.ClickException(f"no session {sid!r}")
    if s.ended_at is not None:
        raise click.ClickException(f"session {sid!r} already ended ({s.end_reason})")
    end_sessions([s], reason="operator", actor="cli")
    emit({"ended": sid})


@click.group("logout")
def logout_group():
    """Back-channel logout deliveries."""


@logout_group.command("deliveries")
@click.option("--status", type=click.Choice(["pending", "delivered", "failed"]))
@with_appcontext
def logout_deliveries(status):
    from .sessions.delivery import describe, list_deliveries

    emit([describe(d) for d in list_deliveries(status)])


@logout_group.command("deliver")
@with_appcontext
def logout_deliver():
    """Attempt every due delivery now (the server's workers also do this every second)."""
    _ensure_keys()
    from .sessions.delivery import deliver_due

    total = 0
    while n := deliver_due():
        total += n
    emit({"attempted": total})


@logout_group.command("retry")
@click.argument("delivery_id", required=False, type=int)
@with_appcontext
def logout_retry(delivery_id):
    """Queue failed deliveries (one, or all) again."""
    from .sessions.delivery import retry_failed

    emit({"requeued": retry_failed(delivery_id)})


@click.command("prune")
@click.option("--keep-hours", type=click.IntRange(min=0), default=None,
              help="Keep rows this long after they stopped mattering (default: IDP_PRUNE_KEEP_HOURS, 24).")
@click.option("--batch", type=click.IntRange(min=1), default=1000, show_default=True, help="Rows per transaction.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@with_appcontext
def prune_command(keep_hours, batch, dry_run):
    """Delete expired codes and tokens, ended sessions, delivered logout notices, expired verification
    codes, replay caches and idle throttling counters (never the audit log). The servers do it every
    IDP_PRUNE_INTERVAL; run it by hand for a first large backlog, or from cron with the interval 0."""
    from datetime import timedelta

    from .ops.retention import prune

    if keep_hours is None:
        keep_hours = int(current_app.config["PRUNE_KEEP_HOURS"])
    done = {}

    def progress(name: str, n: int) -> None:
        done[name] = n
        click.echo(f"{name}: {n} deleted", err=True)

    try:
        counts = prune(timedelta(hours=keep_hours), batch=batch, dry_run=dry_run, progress=progress)
    except (OperationalError, InterfaceError) as exc:
        raise click.ClickException(
            f"the database is unavailable ({type(exc.orig or exc).__name__}) after {sum(done.values())} rows were "
            "deleted; run 'idp prune' again when it is back") from exc
    emit({"dry_run": dry_run, "keep_hours": keep_hours, ("would_delete" if dry_run else "deleted"): counts})


def register_cli(app) -> None:
    from .accounts import cli as accounts_cli
    from .pki.cli import pki_group
    from .seals import cli as seals_cli

    for cmd in (init_command, users_group, clients_group, keys_group, audit_group, sessions_group, logout_group,
                prune_command, *accounts_cli.COMMANDS, pki_group, *seals_cli.COMMANDS):
        app.cli.add_command(cmd)


def _create_cli_app():
    from . import create_app

    try:
        return create_app(load_keys=False)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


class _Group(FlaskGroup):
    def main(self, *args, **kwargs):
        try:
            return super().main(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except (OperationalError, InterfaceError) as exc:
            # PostgreSQL down or unreachable: one line, no trace; the command's transaction was rolled back.
            click.echo(f"Error: the database is unavailable ({type(exc.orig or exc).__name__}); nothing was "
                       "changed, try again when it is back", err=True)
            sys.exit(1)


main = _Group(create_app=_create_cli_app, add_default_commands=False, add_version_option=False,
              help="The city's identity and single sign-on hub.")
main.add_command(serve_command)
