"""Registers `edgekit monitor` and `edgekit command` (one entry of the CLI's command table)."""
from edgekit.operate import command_cli, monitor_cli


def register(subparsers):
    monitor_cli.register(subparsers)
    command_cli.register(subparsers)
