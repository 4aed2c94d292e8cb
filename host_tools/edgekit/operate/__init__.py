"""Operating a live, provisioned device: watch it (`edgekit monitor`) and command it
(`edgekit command`), over one verified, operator-signed link.

    connect.py      the link: HELLO, certificate and registry checks, key epoch, clock
    monitor_cli.py  `edgekit monitor`: print verified frames; --ack stores and acknowledges
    forward.py      store and forward (the gateway's order: verify, store, show, ack)
    command_cli.py  `edgekit command`: one signed COMMAND and its COMMAND_RESULT
    render.py       wire numbers as names, values as a person reads them
    cli.py          registers both commands
"""
