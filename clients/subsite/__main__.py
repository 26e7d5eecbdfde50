"""Run a department subsite on 127.0.0.1 (Flask development server, threaded).

    python -m clients.subsite --name 市场监督管理局 --port 5001 \
        --issuer http://127.0.0.1:5000 --client-id ID --client-secret SECRET

Each option falls back to the environment: SUBSITE_NAME, SUBSITE_PORT, SUBSITE_ISSUER,
SUBSITE_CLIENT_ID, SUBSITE_CLIENT_SECRET (and SUBSITE_SECRET_KEY, random if absent).
"""
from __future__ import annotations

import argparse
import logging
import os

from . import DEFAULTS, create_app


VALUE_OPTIONS = ("--name", "--port", "--issuer", "--client-id", "--client-secret")


def _join_values(argv: list[str]) -> list[str]:
    """Turn ``--opt VALUE`` into ``--opt=VALUE`` so a value starting with '-' (a random client
    secret may) is not mistaken for an option by argparse."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in VALUE_OPTIONS and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> None:
    import sys

    argv = _join_values(list(sys.argv[1:] if argv is None else argv))
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m clients.subsite", description=__doc__.splitlines()[0])
    p.add_argument("--name", default=env("SUBSITE_NAME") or DEFAULTS["SUBSITE_NAME"])
    p.add_argument("--port", type=int, default=int(env("SUBSITE_PORT") or DEFAULTS["SUBSITE_PORT"]))
    p.add_argument("--issuer", default=env("SUBSITE_ISSUER") or DEFAULTS["SUBSITE_ISSUER"])
    p.add_argument("--client-id", default=env("SUBSITE_CLIENT_ID"))
    p.add_argument("--client-secret", default=env("SUBSITE_CLIENT_SECRET"))
    p.add_argument("--scope", default=env("SUBSITE_SCOPE") or DEFAULTS["SUBSITE_SCOPE"],
                   help="scopes to request, e.g. 'openid profile email org'")
    args = p.parse_args(argv)
    if not args.client_id or not args.client_secret:
        p.error("--client-id and --client-secret (or SUBSITE_CLIENT_ID / SUBSITE_CLIENT_SECRET) are required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app({
        "SUBSITE_NAME": args.name,
        "SUBSITE_PORT": args.port,
        "SUBSITE_ISSUER": args.issuer,
        "SUBSITE_CLIENT_ID": args.client_id,
        "SUBSITE_CLIENT_SECRET": args.client_secret,
        "SUBSITE_SCOPE": args.scope,
    })
    app.run(host="127.0.0.1", port=args.port, threaded=True, debug=False, use_reloader=False)


if __name__ == "__main__":
    main()
