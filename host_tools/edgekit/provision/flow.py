"""Provision one device over an open Session (SPEC 8.2).

Steps: hello -> begin (device makes its key) -> certificate (fleet root signs) -> commit
(config, anchors, certificate; the device commits atomically and reboots) -> verify (the
first signed hello) -> record (registry). Power loss or unplugging at any step leaves the
device factory-fresh or fully provisioned: rerunning finishes (a device already holding the
certificate we issued is recognised from the registry's pending row) or starts over.
"""
import hashlib
import os
import time
from datetime import datetime, timezone

from edgekit import appschema
from edgekit import catalog as C
from edgekit.errors import EdgekitError, LinkError, ProtocolError
from edgekit.keys import pointcheck
from edgekit.protocol import cbor, cose, messages

STEPS = ("hello", "begin", "certificate", "commit", "reboot", "verify", "record")


class Fleet:
    """What provisioning needs from the key store: the fleet signer, anchors, seq numbers."""

    def __init__(self, keystore, fleet_signer, operator_signer=None):
        self.keystore = keystore
        self.fleet_signer = fleet_signer
        self.operator_signer = operator_signer
        trust = keystore.anchors()
        self.anchors = trust["anchors"]
        self.epoch = trust["epoch"]
        self.revoked = trust["revoked"]
        self.fleet_public = self.anchors[C.ROLE_FLEET][0]
        self.fleet_id = "fleet-" + cose.kid_of(self.fleet_public).hex()[:8]

    def next_seq(self, role=C.ROLE_FLEET):
        return self.keystore.next_seq(role)


def device_id_for(kind, public_key):
    return f"{appschema.ID_PREFIX[kind]}-{cose.kid_of(public_key)[:6].hex()}"


def check_certificate(cert: bytes, fleet_public: bytes) -> dict:
    """The certificate's fields if the fleet root signed it; ProtocolError otherwise."""
    try:
        sign1 = cose.decode_sign1(cert)
        sign1.verify(fleet_public)
        fields = cbor.loads(sign1.payload)
    except (cose.CoseError, cbor.CBORError):
        raise ProtocolError("device certificate is not signed by this fleet's root key",
                            C.E_UNKNOWN_KEY) from None
    if sign1.protected.get(C.HDR_TYPE) != C.DOC_DEVICE_CERT:
        raise ProtocolError("not a device certificate", C.E_BAD_REQUEST)
    return fields


def issue_certificate(fleet, device_id, public_key, kind, board, hwid, site):
    fields = {C.K_DEVICE_ID: device_id, C.K_PUB: public_key, C.K_KIND: kind, C.K_BOARD: board,
              C.K_HWID: hwid, C.K_ISSUED: int(time.time()), C.K_FLEET: fleet.fleet_id,
              C.K_SITE: site}
    header = {C.HDR_TYPE: C.DOC_DEVICE_CERT, C.HDR_SEQ: fleet.next_seq(), C.HDR_SENDER: "fleet"}
    return cose.sign1(cbor.dumps(fields), fleet.fleet_signer, header)


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def wait_for_boot(session, public_key, timeout=None):
    """HELLO until the device answers CAPS signed by `public_key` (it rebooted into its app):
    20 s, or four times the session's answer timeout when the user gave a longer one for a
    slow link or board (--timeout)."""
    if timeout is None:
        timeout = max(20.0, 4 * session.timeout)
    ring = messages.Keyring()
    ring.add(public_key, C.ROLE_DEVICE)
    session.device_keys = ring
    deadline = time.monotonic() + timeout
    last_error = None
    retries, session.retries = session.retries, 0
    # Short attempts first: a HELLO sent while the device still boots is simply lost. Each
    # silent one doubles the next (to 3 s): a device that signs its CAPS slower than 0.4 s
    # (a loaded host's emulated boards; a slow board) was never heard, every answer coming
    # after its request had been given up (a 1,000-board street: 199 boards failed so).
    attempt = 0.4
    try:
        while time.monotonic() < deadline:
            try:
                caps = session.hello(timeout=min(attempt, max(0.1, deadline - time.monotonic())))
            except (LinkError, ProtocolError) as exc:
                last_error = exc
                attempt = min(3.0, attempt * 2)
                continue
            if caps.role == C.ROLE_DEVICE and caps.payload.get(C.K_STATE) != "factory":
                return caps
            time.sleep(0.1)
    finally:
        session.retries = retries
    raise LinkError(f"the device did not come back signed after reboot ({last_error}); "
                    f"rerun the same command to finish")


def provision(session, fleet, registry, kind, site, config=None, location=None,
              reprovision=False, progress=lambda step, detail="": None, net=None):
    """Provision the device behind `session`; return its registry row. `net`: the network
    config (fleet/netconfig.build, SPEC 13.5) the device stores apart and never answers."""
    appschema.check_kind(kind)
    full_config = appschema.validate(kind, config or {})
    progress("hello")
    caps = session.hello()
    state = caps.payload.get(C.K_STATE)
    if state != "factory":
        caps = _already_provisioned(session, fleet, registry, caps, kind, reprovision, progress)
        if caps is not None and not reprovision:
            return _record(session, registry, caps, location, progress)
    board = caps.payload.get(C.K_BOARD)
    offered = str(caps.payload.get(C.K_KIND) or "").split(",")
    if kind not in offered:
        raise EdgekitError(f"the firmware on this {board} has no {kind} app (it has: "
                           f"{', '.join(k for k in offered if k) or 'none'}); flash the "
                           f"{kind} firmware first (edgekit flash)")

    progress("begin")
    nonce = os.urandom(16)
    begin = {C.K_NONCE: nonce, C.K_FLEET: fleet.fleet_id, C.K_KIND: kind}
    if net and net.get("ca") is not None:
        # SPEC 13.6: the broker's CA goes in PROV_BEGIN, the commit names its SHA-256 (the
        # commit with certificate and anchors leaves no room for it in a 1 KB frame).
        begin[C.K_CA] = net["ca"]
        net = {k: v for k, v in net.items() if k != "ca"}
        net["ca_sha256"] = hashlib.sha256(begin[C.K_CA]).digest()
        # The largest seq the envelope could carry: the size never grows past this.
        if len(messages.unsigned(C.PROV_BEGIN, 0xFFFFFFFF, begin)) > session.max_frame:
            raise EdgekitError(f"the CA certificate ({len(begin[C.K_CA])} bytes of DER) does "
                               f"not fit this device's {session.max_frame}-byte frames: use "
                               "an ECDSA P-256 CA (about 400 bytes)")
    key_msg = session.request(C.PROV_BEGIN, begin, sign=False, expect=C.PROV_KEY)
    p = key_msg.payload
    if p.get(C.K_NONCE) != nonce or p.get(C.K_BOARD) != board:
        raise ProtocolError("PROV_KEY does not answer this session (nonce/board mismatch); "
                            "rerun the command")
    public_key, hwid = p[C.K_PUB], p.get(C.K_HWID)
    # A weak device key (or one equal to an anchor) would let anyone sign as the device:
    # no certificate for it, and nothing is sent to the device.
    pointcheck.check_public(public_key, "the device's new key (PROV_KEY)")
    pointcheck.check_roles(fleet.anchors, device=public_key, what="PROV_COMMIT anchors")

    progress("certificate")
    device_id = device_id_for(kind, public_key)
    cert = issue_certificate(fleet, device_id, public_key, kind, board, hwid, site)
    row = {"kind": kind, "board": board, "public_key": public_key, "certificate": cert,
           "site": site, "hwid": hwid, "status": "provisioning"}
    if location:
        row["location"] = location
    registry.upsert_device(device_id, **row)

    progress("commit", device_id)
    ring = messages.Keyring()
    ring.add(public_key, C.ROLE_DEVICE)
    session.device_keys = ring
    commit = {C.K_NONCE: nonce, C.K_CERT: cert, C.K_ANCHORS: fleet.anchors,
              C.K_EPOCH: fleet.epoch, C.K_REVOKED: fleet.revoked, C.K_CONFIG: full_config}
    if net:
        commit[C.K_NET] = net
    session.request(C.PROV_COMMIT, commit,
                    # verify the certificate, commit, sign: about 1.5 s on an ESP32
                    sign=False, expect=C.PROV_DONE, timeout=max(2 * session.timeout, 2.0))
    progress("reboot")
    caps = wait_for_boot(session, public_key)
    return _record(session, registry, caps, location, progress)


def _already_provisioned(session, fleet, registry, caps, kind, reprovision, progress):
    p = caps.payload
    cert = p.get(C.K_CERT)
    if not isinstance(cert, bytes):
        raise ProtocolError("device says it is provisioned but shows no certificate")
    fields = check_certificate(cert, fleet.fleet_public)   # another fleet's device: refused
    device_id, public_key = fields[C.K_DEVICE_ID], fields[C.K_PUB]
    ring = messages.Keyring()
    ring.add(public_key, C.ROLE_DEVICE)
    session.device_keys = ring
    caps = session.hello()          # again, now that we can check its signature
    if caps.role != C.ROLE_DEVICE:
        raise ProtocolError("device's CAPS is not signed by its certified key")
    known = registry.get(device_id)
    if not reprovision:
        same_key = known is not None and bytes(known.get("public_key") or b"") == public_key
        if same_key and fields.get(C.K_KIND) == kind:
            # A rerun of the same command: the device already is what was asked (perhaps
            # the first run was interrupted after the commit). Finish, idempotently.
            progress("verify", f"{device_id} is already provisioned as asked")
            return caps
        raise EdgekitError(f"device is already provisioned as {device_id} ({fields[C.K_KIND]}); "
                           f"pass --reprovision to wipe and provision it again (needs the "
                           f"operator key)")
    if fleet.operator_signer is None:
        raise EdgekitError("--reprovision needs the operator key: load it with the key "
                           "passphrase (EDGEKIT_KEY_PASSPHRASE)")
    progress("reprovision", device_id)
    session.signer = fleet.operator_signer
    session.next_seq = lambda: fleet.next_seq(C.ROLE_OPERATOR)
    session.request(C.REPROVISION, {C.K_DEVICE_ID: device_id}, expect=C.ACK)
    registry.record_event(device_id, "reprovisioned", {"new_kind": kind})
    session.device_keys = None
    return _wait_factory(session)


def _wait_factory(session, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            caps = session.hello(timeout=1.0)
            if caps.payload.get(C.K_STATE) == "factory":
                return caps
        except (LinkError, ProtocolError):
            pass
        time.sleep(0.2)
    raise LinkError("the device did not come back in factory state after REPROVISION")


def _record(session, registry, caps, location, progress):
    progress("verify")
    p = caps.payload
    device_id = p.get(C.K_DEVICE_ID)
    fields = {"status": "provisioned", "fw_version": p.get(C.K_FW), "provisioned_at": _now()}
    if location:
        fields["location"] = location
    registry.upsert_device(device_id, **fields)
    registry.touch(device_id, caps.seq, p.get(C.K_FW))
    if isinstance(p.get(C.K_EPOCH), int):      # firmware that reports it (SPEC 7)
        registry.record_key_epoch(device_id, p[C.K_EPOCH])
    registry.record_event(device_id, "provisioned", {"board": p.get(C.K_BOARD),
                                                     "kind": p.get(C.K_KIND)})
    progress("record", device_id)
    return registry.get(device_id)
