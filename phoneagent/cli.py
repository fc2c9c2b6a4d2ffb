"""`phoneagent` commands: dev, stack, worker, api, calls, trunks, provision, doctor."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from phoneagent import cli_calls, cli_trunks
from phoneagent import log as pa_log
from phoneagent.config import get_settings
from phoneagent.errors import PhoneagentError, RequestError
from phoneagent.private import private_umask


def _stack_cmd(args: argparse.Namespace) -> int:
    from phoneagent.stack.services import Stack

    stack = Stack(get_settings())
    if args.action == "install":
        stack.services(install_missing=True)
        print(f"stack installed: Debian packages present, LiveKit binaries in {stack.paths.cache / 'bin'}")
    elif args.action == "up":
        stack.up()
        print(
            f"stack ready: LiveKit {stack.settings.livekit_url}, SIP udp://{stack.settings.bind_host}:"
            f"{stack.settings.sip_port}"
        )
    elif args.action == "down":
        stack.down()
    elif args.action == "status":
        rows = stack.status()
        for st in rows:
            state = "healthy" if st.healthy else ("running, unhealthy" if st.running else "stopped")
            print(f"{st.name:<16} {state:<20} pid={st.pid or '-':<8} log={st.log}")
        return 0 if all(st.healthy for st in rows) else 3
    elif args.action == "logs":
        from phoneagent.stack.logs import show_logs

        show_logs(stack, args.service, lines=args.lines, follow=args.follow)
    elif args.action == "refused":
        _print_refused(stack.paths.logfile("livekit-sip"), args.lines)
    return 0


def _print_refused(log: Path, lines: int) -> None:
    from phoneagent.cli_calls import table
    from phoneagent.stack.refused import refused_invites

    settled = datetime.now(UTC) - timedelta(seconds=5)  # a newer INVITE may still be setting up
    found = refused_invites(log, settled_before=settled)[-lines:]
    if not found:
        print(f"no INVITE refused in {log}")
        return
    rows = [(r.at.strftime("%Y-%m-%d %H:%M:%S"), r.from_user, r.from_ip, r.to_user, r.why) for r in found]
    print(table(["when (UTC)", "from", "from address", "to", "what livekit-sip did"], rows))


def _worker_cmd(args: argparse.Namespace) -> int:
    from phoneagent.worker.multiproc import use_multiprocess_dir

    settings = get_settings()
    use_multiprocess_dir(settings.state_dir)  # before livekit-agents imports prometheus_client

    from phoneagent.worker.main import run_worker

    run_worker(settings, dev=args.dev)
    return 0


def _api_cmd(args: argparse.Namespace) -> int:
    import uvicorn

    from phoneagent.api.app import create_app

    settings = get_settings()
    # access_log off: uvicorn would log query strings (numbers, searched words); AccessLog logs paths only
    uvicorn.run(
        create_app(settings),
        host=settings.listen_address,
        port=settings.api_port,
        log_level="info",
        access_log=False,
        # behind a TLS proxy: the scheme it saw (https) counts, so review cookies get Secure
        proxy_headers=True,
        forwarded_allow_ips=",".join(settings.trusted_proxies),
    )
    return 0


def _db_cmd(args: argparse.Namespace) -> int:
    from phoneagent.db.engine import database_url
    from phoneagent.db.migrate import schema_state, upgrade

    url = database_url(get_settings())
    if args.action == "check":
        state = schema_state(url)
        if not state.usable:
            at = f"is at {state.current}" if state.current else "has no schema yet"
            print(f"the database {at}; the latest is {state.head} (`phoneagent db upgrade`)")
            return 3
        if state.ahead:
            print(f"the database is at {state.current}, newer than this version's {state.head}")
            return 0
    else:
        upgrade(url)
    print("database is at the latest schema")
    return 0


def _keys_cmd(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from phoneagent.db.engine import database_url, make_engine, session_factory
    from phoneagent.db.models import Tenant
    from phoneagent.provisioning import keys

    engine = make_engine(database_url(get_settings()))
    with session_factory(engine)() as session:
        if args.action in ("create", "list") and not args.tenant:
            raise RequestError(f"keys {args.action} needs --tenant NAME")
        if args.action in ("revoke", "rotate") and not args.key:
            raise RequestError(f"keys {args.action} needs --key PREFIX (as `keys list` shows it)")
        if args.action == "create":
            token, key = keys.create_key(session, tenant_name=args.tenant, name=args.name)
        elif args.action == "list":
            tenant = session.scalar(select(Tenant).where(Tenant.name == args.tenant))
            if tenant is None:
                raise RequestError(f"no tenant named {args.tenant!r}")
            for k in keys.tenant_keys(session, tenant.id):
                state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
                print(f"pa_{k.prefix}  {state:<24}  created {k.created_at:%Y-%m-%d %H:%M}  {k.name}")
            return 0
        elif args.action == "revoke":
            key = keys.revoke_key(session, keys.key_by_prefix(session, args.key))
            print(f"pa_{key.prefix} revoked: it and its review sessions stop working now", file=sys.stderr)
            return 0
        else:
            token, key = keys.rotate_key(session, keys.key_by_prefix(session, args.key))
    print(token)
    print(f"(key {key.prefix}: shown once, store it now)", file=sys.stderr)
    return 0


def _tenants_cmd(args: argparse.Namespace) -> int:
    from phoneagent.db.engine import database_url, make_engine, session_factory
    from phoneagent.provisioning.tenants import set_countries

    settings = get_settings()
    with session_factory(make_engine(database_url(settings)))() as session:
        tenant = set_countries(session, args.tenant, args.allow.split(","))
    default = ", ".join(settings.call_countries) or "any"
    shown = ", ".join(tenant.allowed_countries) or f"the default ({default})"
    print(f"tenant {tenant.name!r}: calls go to {shown}")
    return 0


def _reconcile_cmd(args: argparse.Namespace) -> int:
    from phoneagent.db.engine import database_url, make_engine, session_factory
    from phoneagent.provisioning.reconcile import reconcile
    from phoneagent.telephony.sip import LiveKitSip

    settings = get_settings()
    with session_factory(make_engine(database_url(settings)))() as session:
        r = reconcile(session, LiveKitSip(settings), agent_name=settings.agent_name, repair=args.repair)
    for row_id in r.missing:
        print(f"missing in LiveKit: {row_id}" + (" (re-created)" if args.repair else ""))
    for lk_id in r.orphans:
        print(f"orphan in LiveKit: {lk_id}" + (" (deleted)" if args.repair else ""))
    print("in sync" if r.in_sync else ("repaired" if args.repair else "drift found: run with --repair"))
    return 0 if r.in_sync or args.repair else 1


def _provision_cmd(args: argparse.Namespace) -> int:
    from phoneagent.db.engine import database_url, make_engine, session_factory
    from phoneagent.db.migrate import upgrade
    from phoneagent.dev_tenant import ensure_dev_line

    settings = get_settings()
    upgrade(database_url(settings))
    engine = make_engine(database_url(settings))
    try:
        with session_factory(engine)() as session:
            line = ensure_dev_line(session, settings)
    finally:
        engine.dispose()
    print(f"tenant dev: agent profile {line.agent_profile_id}, inbound trunk {line.trunk_id}")
    print(f"dispatch rule {line.rule_id}")
    print(f"its API key is in {line.key_file}")
    return 0


def _dev_cmd(args: argparse.Namespace) -> int:
    from phoneagent.dev import run_dev

    return run_dev(get_settings())


def _call_cmd(args: argparse.Namespace) -> int:
    from phoneagent.cli_call import main_call

    return main_call(args, get_settings())


def _doctor_cmd(args: argparse.Namespace) -> int:
    from phoneagent.doctor import run_doctor

    return run_doctor(get_settings())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phoneagent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("dev", help="the main job: stack up, SIP routing, worker; prints the number to dial")
    p.set_defaults(func=_dev_cmd)

    p = sub.add_parser("stack", help="the local LiveKit stack: Redis, livekit-server, livekit-sip, egress")
    p.add_argument("action", choices=["install", "up", "down", "status", "logs", "refused"])
    p.add_argument("service", nargs="?", help="for logs: redis, livekit-server, livekit-sip or egress")
    p.add_argument("-n", "--lines", type=int, default=40, help="for logs and refused: how many lines")
    p.add_argument("-f", "--follow", action="store_true", help="for logs: keep printing new lines")
    p.set_defaults(func=_stack_cmd)

    p = sub.add_parser("worker", help="run the agent worker (answers SIP calls)")
    p.add_argument("--dev", action="store_true", help="development mode (colored logs, no load limit)")
    p.set_defaults(func=_worker_cmd)

    p = sub.add_parser("api", help="run the control plane (FastAPI)")
    p.set_defaults(func=_api_cmd)

    cli_calls.add_parser(sub)
    cli_trunks.add_parser(sub)

    p = sub.add_parser("db", help="database schema: upgrade it, or check it is the latest (exit 3: not)")
    p.add_argument("action", choices=["upgrade", "check"])
    p.set_defaults(func=_db_cmd)

    p = sub.add_parser("tenants", help="what the operator sets per tenant")
    p.add_argument("action", choices=["countries"])
    p.add_argument("tenant", help="tenant name")
    p.add_argument(
        "--allow", required=True, help="ISO country codes its calls may go to, e.g. US,CA ('': the default)"
    )
    p.set_defaults(func=_tenants_cmd)

    p = sub.add_parser("keys", help="API keys: create, list, revoke, rotate")
    p.add_argument("action", choices=["create", "list", "revoke", "rotate"])
    p.add_argument("--tenant", help="tenant name (create: made if new; list)")
    p.add_argument("--key", help="revoke, rotate: the key's prefix, as `keys list` shows it")
    p.add_argument("--name", default="", help="a label for the key")
    p.set_defaults(func=_keys_cmd)

    p = sub.add_parser(
        "reconcile", help="report (and with --repair fix) drift between the database and LiveKit"
    )
    p.add_argument("--repair", action="store_true")
    p.set_defaults(func=_reconcile_cmd)

    p = sub.add_parser(
        "provision", help="create the dev tenant's agent profile, inbound trunk and dispatch rule (and key)"
    )
    p.set_defaults(func=_provision_cmd)

    from phoneagent.cli_call import add_parser as add_call

    add_call(sub)
    sub.choices["call"].set_defaults(func=_call_cmd)

    p = sub.add_parser("doctor", help="print the state of every part: versions, ports, health")
    p.set_defaults(func=_doctor_cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    private_umask()  # what phoneagent and the services it starts write is the owner's alone
    try:
        if args.command != "worker":  # the worker's logging is set up by livekit-agents
            pa_log.setup(get_settings().log_level)
        return int(args.func(args) or 0)
    except PhoneagentError as exc:
        print(f"phoneagent: error: {exc}", file=sys.stderr)  # one line: the message, then (hint: ...)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
