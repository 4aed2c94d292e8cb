"""One runner for every command that works on a tray of ports at once: flash, provision,
keys deliver and ota campaign (its discovery and its stages).

    results = run_per_port(ports, work, parallel, progress)   # one dict per port, in order
    code = exit_status(results)      # 0 all ok; else the failures' status (3 link)

`work(port)` does one port's job and returns that port's result fields; an EdgekitError or
OSError it raises fails that port alone (recorded, reported to `progress`), never the
tray: a board that drops off the USB hub must not stop the 15 others. Anything else is a
bug and propagates once every port has finished.

`--parallel` is checked by argparse (add_parallel_option), so 0 or a negative count is a
usage error before any port is opened, the same in every command.
"""
import argparse
import time
from concurrent.futures import ThreadPoolExecutor, wait

from edgekit.errors import EdgekitError, LinkError


class _AtLeastOne(argparse.Action):
    def __call__(self, parser, namespace, value, option_string=None):
        if value < 1:
            parser.error(f"{option_string} {value}: give how many ports to work on at once, "
                         "at least 1")
        setattr(namespace, self.dest, value)


def add_parallel_option(parser, default, what="ports"):
    """The `--parallel N` option, the same in every tray command."""
    parser.add_argument("--parallel", type=int, default=default, metavar="N",
                        action=_AtLeastOne, help=f"{what} at once (default {default})")


def check_parallel(parallel):
    """For callers outside argparse (library use): the same rule as the option."""
    if not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 1:
        raise EdgekitError(f"parallel={parallel!r}: give how many ports to work on at once, "
                           "at least 1")
    return parallel


def each(items, work, parallel):
    """work(item) for every item, at most `parallel` at once; results in item order.

    The one thread pool of the tray commands: callers that keep their own per-item record
    (ota campaign) use it directly, the rest through run_per_port."""
    items = list(items)
    check_parallel(parallel)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(len(items), parallel)) as pool:
        # Every item runs to its end before a bug in one propagates: pool.map would cancel
        # the items not started yet when it raises, leaving boards of the tray untouched.
        futures = [pool.submit(work, item) for item in items]
        wait(futures)
    return [f.result() for f in futures]


def run_per_port(ports, work, parallel, progress=None):
    """Run `work(port) -> dict` on every port; one result per port, in port order.

    Each result has "port", "ok" and "seconds"; a failed port has "error" (the message),
    "step" when the error names the step it failed in (its `step` attribute: which of
    provisioning's exchanges a tray's failures have in common), and progress(port,
    "failed", message) is called for it."""
    progress = progress or (lambda port, step, detail="": None)

    def one(port):
        started = time.monotonic()
        try:
            fields = work(port) or {}
            result = {"port": port, "ok": True, **fields}
        except (EdgekitError, OSError) as exc:
            message = str(exc) or type(exc).__name__
            progress(port, "failed", message)
            # The status the same failure has in a one-port command (an OSError is the
            # port itself: a link error).
            status = exc.exit_code if isinstance(exc, EdgekitError) else LinkError.exit_code
            result = {"port": port, "ok": False, "error": message, "exit_status": status}
            if getattr(exc, "step", None):
                result["step"] = exc.step
        result["seconds"] = round(time.monotonic() - started, 2)
        return result

    return each(ports, one, parallel)


def tally(results):
    """{"ok": n, "failed": m} of a tray's per-port results."""
    ok = sum(1 for r in results if r["ok"])
    return {"ok": ok, "failed": len(results) - ok}


def exit_status(results):
    """0 when every port succeeded; when ports failed, the status their failure has in
    every command (3: the link, a wrong or unplugged port; 2: what the user can fix), so a
    wrong port exits 3 in `flash` as in `command`; 1 when ports failed in different ways."""
    failed = {r.get("exit_status", 1) for r in results if not r["ok"]}
    if not failed:
        return 0
    return failed.pop() if len(failed) == 1 else 1
