# Core protocol services every provisioned device offers, whatever its kind: capabilities,
# config, time, store-and-forward fetch/ack of telemetry, events and logs, reboot, key epochs
# and reprovisioning. App-specific commands go through rt.app.command().
import gc
import sys

import catalog as C
import cbor
import cose
import device as device_mod
import schema
from agent import refuse

_FETCH_MAX = 32


def caps(rt):
    dev = rt.dev
    v = sys.implementation.version
    p = {C.K_PROTO: C.PROTOCOL_VERSION, C.K_BOARD: rt.hal.NAME, C.K_FW: rt.fw_version,
         C.K_RUNTIME: "%d.%d.%d" % (v[0], v[1], v[2]), C.K_MAX_FRAME: rt.max_frame,
         C.K_WINDOW: rt.window, C.K_FREE_HEAP: gc.mem_free(),
         C.K_STATE: rt.state, C.K_HWID: rt.hal.unique_id(),
         C.K_UPTIME: rt.uptime_ms(),
         C.K_RESET_CAUSE: rt.reset_cause, C.K_TIME: rt.hal.time()}
    if dev.provisioned:
        p[C.K_DEVICE_ID] = dev.device_id
        p[C.K_KIND] = dev.kind
        p[C.K_CERT] = dev.cert
        # The host compares it with its key store and sends KEY_EPOCH first when behind:
        # a device missing a rotation refuses every frame the new operator key signs.
        p[C.K_EPOCH] = dev.epoch
    elif rt.kinds:
        p[C.K_KIND] = ",".join(rt.kinds)
    return p


def hello(rt, msg):
    versions = msg.payload.get(C.K_PROTO)
    if isinstance(versions, list) and len(versions) == 2 and \
            not versions[0] <= C.PROTOCOL_VERSION <= versions[1]:
        refuse(C.E_UNSUPPORTED_VERSION, "device speaks protocol %d..%d"
               % (C.PROTOCOL_VERSION, C.PROTOCOL_VERSION))
    return C.CAPS, caps(rt)


def install(rt):
    a = rt.agent
    a.on(C.HELLO, lambda m: hello(rt, m))
    if not rt.dev.provisioned:
        return
    a.on(C.CONFIG_GET, lambda m: config_get(rt, m))
    a.on(C.CONFIG_SET, lambda m: config_set(rt, m))
    a.on(C.TIME_SYNC, lambda m: time_sync(rt, m))
    a.on(C.TELEMETRY_FETCH, lambda m: fetch(rt, m, rt.telemetry, C.TELEMETRY))
    a.on(C.TELEMETRY_ACK, lambda m: ack(rt, m, rt.telemetry))
    a.on(C.EVENT_FETCH, lambda m: fetch(rt, m, rt.events, C.EVENTS))
    a.on(C.EVENT_ACK, lambda m: ack(rt, m, rt.events))
    a.on(C.LOG_FETCH, lambda m: fetch(rt, m, rt.logs, C.LOG))
    a.on(C.REBOOT, lambda m: reboot(rt, m))
    a.on(C.KEY_EPOCH, lambda m: key_epoch(rt, m))
    a.on(C.REPROVISION, lambda m: reprovision(rt, m))
    a.on(C.COMMAND, lambda m: command(rt, m))


def config_get(rt, msg):
    name = msg.payload.get(C.K_NAME)
    cfg = rt.dev.config
    if name is not None:
        if name not in cfg:
            refuse(C.E_NOT_FOUND, "no setting %r" % (name,))
        cfg = {name: cfg[name]}
    return C.CONFIG, {C.K_CONFIG: cfg}


def config_set(rt, msg):
    values = msg.payload.get(C.K_CONFIG)
    try:
        new = schema.validate(rt.schema, values, rt.dev.config)
        # Rules across keys (a low threshold above its high one) are the app's to judge.
        if rt.app is not None and hasattr(rt.app, "check_config"):
            rt.app.check_config(new)
    except ValueError as exc:
        refuse(C.E_BAD_REQUEST, str(exc))
    rt.dev.store.save("config", new)   # durable before it takes effect
    rt.dev.config = new
    if rt.app is not None and hasattr(rt.app, "reconfigure"):
        rt.app.reconfigure(new)
    return C.ACK, {C.K_CONFIG: new}


def time_sync(rt, msg):
    t = msg.payload.get(C.K_TIME)
    if not isinstance(t, int) or t < 1600000000:
        refuse(C.E_BAD_REQUEST, "time must be unix seconds after 2020")
    rt.clock.sync(t)        # the RTC and the time floor (SPEC 8.4), saved
    return C.TIME, {C.K_TIME: rt.hal.time(), C.K_UPTIME: rt.uptime_ms()}


def fetch(rt, msg, journal, reply_type):
    p = msg.payload
    count = p.get(C.K_COUNT, _FETCH_MAX)
    frm = p.get(C.K_FROM)
    if not isinstance(count, int) or count < 1:
        refuse(C.E_BAD_REQUEST, "count must be a positive integer")
    if frm is not None and (not isinstance(frm, int) or frm < 0):
        refuse(C.E_BAD_REQUEST, "from must be a journal sequence number")
    return reply_type, records_payload(rt, journal, reply_type, frm, count)


def push_telemetry(rt):
    """Send pending telemetry unsolicited (the reporting schedule); False if none pending."""
    push_event_backlog(rt)
    if not rt.telemetry.pending_count():
        return False
    rt.push(rt.dev.body_view(C.TELEMETRY, records_payload(rt, rt.telemetry, C.TELEMETRY,
                                                          None, _FETCH_MAX)))
    return True


def push_event_backlog(rt):
    # An event is pushed once, when it happens (runtime.event); the fleet service fetches
    # and acks the event journal only when one arrives (SPEC 13.3). One raised while the
    # network was down went to nobody and would wait for the next alarm: the reporting
    # schedule sends what is still unacknowledged as EVENTS, which the service stores
    # (each once) and acks by its upto. Network only: on the cable a host fetches them.
    # False when there was nothing to send or it could not go.
    if rt.net is None or not rt.events.pending_count():
        return False
    return rt.net.send(rt.dev.body_view(C.EVENTS, records_payload(rt, rt.events, C.EVENTS,
                                                                    None, _FETCH_MAX)))


def records_payload(rt, journal, reply_type, frm, count):
    # Leave room in the frame for the envelope and signature (about 120 bytes).
    budget = rt.max_frame - 160
    rows = journal.read(frm, min(count, _FETCH_MAX), budget)
    records = []
    used = 0
    first = last = None
    # One stored entry decoded at a time, re-encoded, and kept as bytes (cbor.Raw): the
    # peak is one entry's objects, not all of them (a day of hourly packs decoded at once
    # was the largest allocation on a 110K ESP32 heap).
    while rows:
        seq, payload = rows.pop(0)
        entry = cbor.loads(payload)
        payload = None
        if reply_type == C.TELEMETRY:
            item = [seq, rt.restamp(entry)]     # stored times -> SenML times as of now
        elif reply_type == C.LOG:
            item = [seq] + entry                # [seq, level, text]
        else:
            item = [seq, entry]                 # events: the payload as pushed
        entry = None
        data = cbor.dumps(item)
        item = None
        if records and used + len(data) > budget:
            break
        used += len(data)
        records.append(cbor.Raw(data))
        first = seq if first is None else first
        last = seq
    if first is None:
        first, last = journal.last_seq + 1, journal.last_seq
    return {C.K_RECORDS: records, C.K_FROM: first, C.K_UPTO: last,
            C.K_MORE: last < journal.last_seq, C.K_DROPPED: journal.dropped}


def ack(rt, msg, journal):
    upto = msg.payload.get(C.K_UPTO)
    if not isinstance(upto, int) or upto < 0:
        refuse(C.E_BAD_REQUEST, "upto must be a journal sequence number")
    if upto > journal.last_seq:
        refuse(C.E_BAD_REQUEST, "cannot acknowledge %d: the last record is %d"
               % (upto, journal.last_seq))
    journal.ack(upto)
    if journal is rt.telemetry and rt.app is not None and hasattr(rt.app, "delivered"):
        rt.app.delivered()
    return C.ACK, {C.K_UPTO: upto, C.K_COUNT: journal.pending_count()}


def reboot(rt, msg):
    rt.log("reboot requested by %s" % msg.sender)
    rt.agent.after_reply = lambda: rt.hal.reset("reboot")   # answer first, then reset
    return C.ACK, {}


def key_epoch(rt, msg):
    p = msg.payload
    epoch = p.get(C.K_EPOCH)
    new = p.get(C.K_ANCHORS)
    revoked = p.get(C.K_REVOKED, [])
    dev = rt.dev
    if not isinstance(epoch, int) or epoch <= dev.epoch:
        refuse(C.E_REPLAYED, "key epoch %r is not above the current %d" % (epoch, dev.epoch))
    if not isinstance(new, dict) or not isinstance(revoked, list):
        refuse(C.E_BAD_REQUEST, "key epoch needs anchors and a revoked list")
    anchors = dict(dev.anchors)
    for role in (C.ROLE_OPERATOR, C.ROLE_FIRMWARE):
        keys = new.get(role)
        if keys is not None:
            if not isinstance(keys, list) or not keys or len(keys) > 2 or \
                    not all(isinstance(k, bytes) and len(k) == 32 for k in keys):
                refuse(C.E_BAD_REQUEST, "%s keys: one or two 32-byte public keys" % role)
            anchors[role] = keys
    if not all(isinstance(k, bytes) and len(k) == 8 for k in revoked):
        refuse(C.E_BAD_REQUEST, "revoked: a list of 8-byte key ids")
    for role in (C.ROLE_FLEET, C.ROLE_OPERATOR, C.ROLE_FIRMWARE):
        for k in anchors[role]:
            if cose.kid_of(k) in revoked:
                refuse(C.E_BAD_REQUEST, "a %s key is both trusted and revoked" % role)
    from trust import check_anchor_keys   # here: an epoch is rare, the heap is not
    try:
        check_anchor_keys(anchors, dev.identity.get("pub"))
    finally:
        del sys.modules["trust"]   # 1.8 KB a device applying an epoch a year need not keep
    anchors["revoked"] = revoked[-16:]     # the newest revocations, if there are more
    anchors["epoch"] = epoch
    # The fleet key's replay counter goes in the same commit as the anchors (Device.accept
    # left it in RAM): a power cut between two saves left a device on the old epoch that
    # refused the same KEY_EPOCH as replayed.
    dev.commit_with_replay({"anchors": anchors})
    dev._load_anchors(anchors)
    return C.ACK, {C.K_EPOCH: epoch}


def reprovision(rt, msg):
    dev = rt.dev
    if msg.payload.get(C.K_DEVICE_ID) != dev.device_id:
        refuse(C.E_BAD_REQUEST, "reprovision names another device id")
    # `identity` goes first: Device.load needs all four records, so the device is factory
    # state from that one delete on, and a power cut mid-way cannot leave it half provisioned.
    for name in device_mod.PROVISION_RECORDS:
        dev.store.delete(name)
    dev.store.delete("net")     # network credentials go with the identity (SPEC 13.5)
    rt.log("reprovision: back to factory state")
    rt.agent.after_reply = lambda: rt.hal.reset("reprovision")
    return C.ACK, {C.K_STATE: "factory"}


def diag(rt):
    """What a technician or a test asks a device about its health (command "diag")."""
    gc.collect()
    sched = rt.sched
    # Live heap after a collection; the peak a workload needs is found by bisecting the heap
    # the emulator gives the board (bench/bench_apps.py), not sampled here.
    out = {"heap_free": gc.mem_free(), "heap_used": gc.mem_alloc(),
           "heap_board": rt.hal.BOARD.get("heap"), "flash_ops": rt.hal.flash.writes,
           "boots": rt.boots, "reset_cause": rt.reset_cause, "uptime_s": rt.uptime_s(),
           "device_time": rt.device_time(), "task_errors": sched.errors,
           "energy": sched.energy(), "link_frames_sent": rt.link.sent,
           "rejected": rt.agent.rejected, "interrupts_refused": rt.gate.refused,
           "maintenance_s": rt.gate.remaining_ms() // 1000}
    hal = rt.hal
    if hasattr(hal, "power_stats"):
        # Measured time asleep and awake (the HAL's light sleeps) and the charge per day it
        # draws at the board's currents: the battery-life estimate's inputs.
        import power    # small (power.py): not battery's tables, which needed a 1.3 KB block
        out["power"] = power.power_report(hal.power_stats(), hal.BOARD.get("power"))
    if rt.net is not None:
        # The broker and the link's counters; never the credentials (SPEC 13.5).
        out["net"] = rt.net.stats()
    if hasattr(hal, "reset_reason"):
        out["reset_reason"] = hal.reset_reason()
    for name in ("telemetry", "events", "logs"):
        j = getattr(rt, name)
        if j is not None:
            out[name] = {"pending": j.pending_count(), "last": j.last_seq, "dropped": j.dropped}
    return out


def command(rt, msg):
    name = msg.payload.get(C.K_NAME)
    args = msg.payload.get(C.K_ARGS, {})
    if not isinstance(name, str) or not isinstance(args, dict):
        refuse(C.E_BAD_REQUEST, "command needs a name and an args map")
    if name == "diag":
        return C.COMMAND_RESULT, {C.K_NAME: name, C.K_RESULT: diag(rt)}
    if name == "maintenance":
        return C.COMMAND_RESULT, {C.K_NAME: name, C.K_RESULT: rt.gate.open(msg, args)}
    if rt.app is None or not hasattr(rt.app, "command"):
        refuse(C.E_UNKNOWN_TYPE, "this device has no commands")
    result = rt.app.command(name, args)
    return C.COMMAND_RESULT, {C.K_NAME: name, C.K_RESULT: result}
