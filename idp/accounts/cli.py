"""Operator commands for departments, officials and businesses (``idp departments|officials|businesses``).

Every command prints JSON on stdout; a refusal is one line on stderr with a non-zero exit.
"""
from __future__ import annotations


import click
from flask.cli import with_appcontext

from ..cli import emit, refusals


_operator = refusals()  # messages in English, domain refusals as one-line CLI errors


def _when(dt) -> str | None:
    return dt.isoformat(timespec="seconds") + "Z" if dt else None


# --- departments --------------------------------------------------------------------------------------

@click.group("departments")
def departments_group():
    """City departments (they own subsites and seals; officials are their staff)."""


@departments_group.command("create")
@click.option("--code", required=True)
@click.option("--name", required=True)
@with_appcontext
@_operator
def departments_create(code, name):
    from .officials import create_department

    d = create_department(code=code, name=name)
    emit({"code": d.code, "name": d.name})


@departments_group.command("close")
@click.argument("code")
@with_appcontext
@_operator
def departments_close(code):
    """Close a department (merged or dissolved): every staff membership in it ends, and the sessions
    and tools' tokens that held the role with it."""
    from .officials import close_department

    emit(close_department(code))


@departments_group.command("list")
@with_appcontext
@_operator
def departments_list():
    from .officials import list_departments

    emit([{"code": d.code, "name": d.name, "status": d.status} for d in list_departments()])


# --- officials ----------------------------------------------------------------------------------------

@click.group("officials")
def officials_group():
    """Officials: staff memberships of citizens' accounts in departments."""


@officials_group.command("add")
@click.option("--username", required=True)
@click.option("--department", required=True, help="department code")
@click.option("--role", default="staff", show_default=True)
@with_appcontext
@_operator
def officials_add(username, department, role):
    from .officials import add_official

    add_official(username=username, department=department, role=role)
    emit({"username": username, "department": department, "role": role, "status": "active"})


@officials_group.command("list")
@click.option("--department", help="only this department (code)")
@with_appcontext
@_operator
def officials_list(department):
    from .officials import list_officials

    emit([{"username": p.username, "department": d.code, "role": o.role, "since": _when(o.created_at)}
          for o, p, d in list_officials(department)])


@officials_group.command("remove")
@click.option("--username", required=True)
@click.option("--department", required=True, help="department code")
@with_appcontext
@_operator
def officials_remove(username, department):
    from .officials import remove_official

    ended = remove_official(username=username, department=department)
    emit({"username": username, "department": department, "status": "ended", **ended})


# --- businesses ---------------------------------------------------------------------------------------

@click.group("businesses")
def businesses_group():
    """Businesses (legal persons) and the people who act for them."""


@businesses_group.command("create")
@click.option("--uscc", required=True, help="unified social credit code (GB 32100)")
@click.option("--name", required=True)
@click.option("--representative", required=True, help="username of the legal representative (real-name verified)")
@with_appcontext
@_operator
def businesses_create(uscc, name, representative):
    from .businesses import find_person, register_business

    person = find_person(representative)
    if person is None:
        raise click.ClickException(f"there is no active account with the username {representative}")
    b = register_business(representative=person, uscc=uscc, name=name, actor="cli")
    emit({"id": b.public_id, "uscc": b.uscc, "name": b.name, "representative": person.username})


@businesses_group.command("add-agent")
@click.option("--business", "business_id", required=True, help="the business id printed by 'create'")
@click.option("--username", required=True)
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]), help="last day of the authorization (YYYY-MM-DD)")
@with_appcontext
@_operator
def businesses_add_agent(business_id, username, until):
    """Authorize an agent; the agent must still confirm on their account page."""
    from .businesses import get_business
    from .representation import authorize_agent, end_of_day

    rep = authorize_agent(business=get_business(business_id), username=username,
                          valid_until=end_of_day(until.date()) if until else None, by=None, actor="cli")
    emit({"representation": rep.id, "business": business_id, "username": username, "status": rep.status,
          "valid_until": _when(rep.valid_until)})


@businesses_group.command("set-representative")
@click.option("--business", "business_id", required=True, help="the business id printed by 'create'")
@click.option("--username", required=True, help="the new legal representative (real-name verified)")
@with_appcontext
@_operator
def businesses_set_representative(business_id, username):
    """Record a new legal representative; the previous one stops acting for the business at once."""
    from .businesses import change_representative, find_person, get_business

    person = find_person(username)
    if person is None:
        raise click.ClickException(f"there is no active account with the username {username}")
    emit(change_representative(get_business(business_id), person, actor="cli"))


@businesses_group.command("list")
@with_appcontext
@_operator
def businesses_list():
    from ..db import db
    from .businesses import list_businesses
    from .models import Person
    from .representation import agents_of, state

    out = []
    for b in list_businesses():
        rep = db.session.get(Person, b.representative_id)
        out.append({"id": b.public_id, "uscc": b.uscc, "name": b.name, "status": b.status,
                    "representative": rep.username if rep else None,
                    "agents": [{"username": p.username, "status": state(r), "valid_from": _when(r.valid_from),
                                "valid_until": _when(r.valid_until)} for r, p in agents_of(b)]})
    emit(out)


COMMANDS = (departments_group, officials_group, businesses_group)
