"""Registers `edgekit monitor`, `edgekit command` and `edgekit ledger` (one entry of the
CLI's command table)."""
from edgekit.operate import command_cli, ledger_cli, monitor_cli


def register(subparsers):
    monitor_cli.register(subparsers)
    command_cli.register(subparsers)
    ledger_cli.register(subparsers)
