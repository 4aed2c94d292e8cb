"""Flash one device: the function `edgekit flash` (and the demo) calls.

    from edgekit.flash import flow, image
    img = image.build("rp2040", "water_meter")
    report = flow.flash("socket://127.0.0.1:4001", img, progress=print)

Steps: [runtime image] -> connect (raw REPL, soft reset) -> probe -> check target -> heap
prediction -> survey -> plan -> remove main.py and stale files -> send -> on-device load
check -> main.py -> reboot -> HELLO (the firmware answers in factory state).
An interruption anywhere leaves a board that boots into its REPL (main.py is absent until
the end) or the finished install; rerunning the same call completes it.
"""
import time

from edgekit import catalog as C
from edgekit.board_defs import serial_baud
from edgekit.errors import EdgekitError, LinkError, ProtocolError
from edgekit.flash import frozen as frozen_mod
from edgekit.flash import heap, installer, scripts
from edgekit.flash.device import Connection, TargetError, check_target, probe

STEPS = ("runtime", "connect", "probe", "survey", "clean", "transfer", "heap", "main.py",
         "reboot", "hello", "done")


class HeapError(EdgekitError):
    """The image cannot run from the filesystem within this board's heap, or does not even
    import there (the load check's verdict says which)."""


def _hello(port, kind, timeout=20.0):
    """The firmware's CAPS once it has booted; ProtocolError if it is not factory-fresh."""
    from edgekit.protocol.session import Session
    from edgekit.transport import SerialTransport
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with SerialTransport(port) as t:
                caps = Session(t, timeout=2.0).hello(timeout=2.0).payload
            break
        except (LinkError, ProtocolError) as exc:
            last = exc
            time.sleep(0.3)
    else:
        raise LinkError(f"the flashed firmware did not answer HELLO within {timeout:.0f} s "
                        f"({last}); see what the board prints with `mpremote connect {port}`")
    kinds = str(caps.get(C.K_KIND) or "").split(",")
    if caps.get(C.K_STATE) != "factory" or kind not in kinds:
        raise ProtocolError(f"after flashing, the device reports state {caps.get(C.K_STATE)!r}"
                            f" and kinds {kinds}, not a factory-fresh {kind}")
    return {"state": caps.get(C.K_STATE), "board": caps.get(C.K_BOARD),
            "kinds": kinds, "fw_version": caps.get(C.K_FW)}


def _open_repl(port, baudrate):
    """The raw REPL; a provisioned device keeps it locked (SPEC 12), which gets its own
    message: what the technician must do is open maintenance, not check the cable."""
    try:
        return Connection(port, baudrate).open()
    except LinkError:
        from edgekit.protocol.session import Session
        from edgekit.transport import SerialTransport
        try:
            with SerialTransport(port) as t:
                caps = Session(t, timeout=2.0).hello(timeout=2.0).payload
        except (LinkError, ProtocolError):
            caps = {}
        if caps.get(C.K_STATE) in ("provisioned", "trial"):
            raise TargetError(f"device {caps.get(C.K_DEVICE_ID)} on {port} is provisioned and "
                              "its REPL is locked: open it with `edgekit maintenance "
                              f"{port} --minutes 10`, then run this again") from None
        raise


def flash(port, image, wipe=False, ignore_heap=False, hello=True, runtime=None,
          progress=None, baudrate=None) -> dict:
    """Install `image` (edgekit.flash.image.Image) on the device at `port`; the report.
    The serial port is set for the board's link (its UART's baud; a USB CDC link has none)
    unless `baudrate` says otherwise."""
    say = progress or (lambda step, detail="": None)
    started = time.monotonic()
    report = {"port": port, "board": image.board, "kind": image.kind,
              "version": image.version, "link": image.board_def["link"]["kind"], "ok": False}
    baudrate = baudrate or serial_baud(image.board_def)
    if runtime is not None:
        from edgekit.flash import runtime_image
        say("runtime", str(runtime))
        report["runtime"] = runtime_image.install(port, image.board_def, runtime, wipe=wipe,
                                                  progress=say)
    say("connect")
    with _open_repl(port, baudrate) as conn:
        say("probe")
        info = probe(conn)
        report["device"] = info.describe()
        check_target(info, image, wipe)
        report["frozen"] = None
        if info.frozen:
            image, report["frozen"] = frozen_mod.split(image, info.frozen)
        use_deflate = bool(info.deflate)
        # Frozen firmware runs from flash: there is no .mpy footprint to predict.
        predicted = None if info.frozen else heap.predict(info, image)
        report["heap_predicted"] = predicted
        if predicted and predicted["decisive"] and not predicted["fits"] and not ignore_heap:
            raise HeapError(predicted["problem"])
        say("survey")
        have, dirs = installer.survey(conn, image)
        plan = installer.make_plan(image, have, dirs)
        report["plan"] = plan.describe()
        installer.check_space(plan, have, info, use_deflate)
        body = [f for f in plan.send if f.path != installer.MAIN]
        stats = {"wire_bytes": 0, "seconds": 0.0, "resent": 0}
        if plan.changes:
            say("clean", f"{len(plan.remove_files) + len(plan.remove_dirs)} to remove")
            installer.remove(conn, plan)
            if body:
                say("transfer", f"{len(body)} files")
                stats = installer.send(conn, body, use_deflate, say)
        say("heap")
        conn.soft_reset()
        check = conn.exec_json(scripts.render(scripts.LOAD_CHECK,
                                              MODULES=image.boot_modules(),
                                              REACH=heap.working_need(image.board_def)))
        verdict = heap.assess(image.board_def, check["resident"], check["free"],
                              check["error"], frozen=bool(info.frozen))
        report["heap"] = verdict
        if not verdict["fits"] and not ignore_heap:
            raise HeapError(verdict["problem"] + "; main.py was not written, so the board "
                            "stays in its REPL")
        if plan.changes:
            say("main.py")
            conn.soft_reset()
            more = installer.send(conn, [f for f in plan.send if f.path == installer.MAIN],
                                  use_deflate)
            for key in ("wire_bytes", "seconds", "resent"):
                stats[key] += more[key]
        say("reboot")
        conn.reboot()
    report.update(sent=len(plan.send), skipped=len(plan.keep),
                  removed=len(plan.remove_files) + len(plan.remove_dirs),
                  wire_bytes=stats["wire_bytes"], resent=stats["resent"],
                  transfer_s=round(stats["seconds"], 2))
    if hello and verdict["fits"]:
        say("hello")
        report["firmware"] = _hello(port, image.kind)
    report["ok"] = True
    report["seconds"] = round(time.monotonic() - started, 2)
    say("done", f"{report['sent']} sent, {report['skipped']} unchanged, "
                f"{report['seconds']} s")
    return report
