# Factory-state provisioning responder (SPEC 8.2). Trust model: a factory-fresh device trusts
# whoever holds its cable, as every provisioning scheme with physical access does; from the
# commit on it trusts only the anchors it was given, and leaving that state needs an
# operator-signed REPROVISION.
#
#   PROV_BEGIN {nonce, fleet, kind[, ca]}  -> the device makes its Ed25519 key pair from the
#                                       board RNG (the private half never leaves it), holds
#                                       the broker's CA if given, and answers
#   PROV_KEY {pub, hwid, board, nonce}  signed by the new key (proof of possession)
#   PROV_COMMIT {nonce, cert, anchors, config}  -> checks everything, commits identity, cert,
#                                       anchors and config in ONE atomic store commit
#   PROV_DONE {device_id}            signed by the device key; then reset into the app.
# Until the commit nothing is written: a power cut before it leaves a factory-fresh device.
import gc

import catalog as C
import cbor
import cose
import ed25519
import envelope
import schema
from agent import refuse
from trust import check_anchor_keys, check_public


class Provisioner:
    def __init__(self, rt):
        self.rt = rt
        self.pending = None
        rt.agent.on(C.PROV_BEGIN, self.begin)
        rt.agent.on(C.PROV_COMMIT, self.commit)

    def _sender(self):
        return "factory-" + self.rt.hal.unique_id()[:8].hex()

    def begin(self, msg):
        p = msg.payload
        nonce, kind, fleet = p.get(C.K_NONCE), p.get(C.K_KIND), p.get(C.K_FLEET)
        if not isinstance(nonce, bytes) or len(nonce) != 16 or not isinstance(fleet, str):
            refuse(C.E_BAD_REQUEST, "PROV_BEGIN needs a 16-byte nonce and a fleet id")
        if kind not in self.rt.kinds:
            refuse(C.E_BAD_REQUEST, "kind %r is not in this firmware (it has: %s); flash the "
                   "firmware for that kind" % (kind, ", ".join(self.rt.kinds)))
        ca = self._ca(p.get(C.K_CA))
        pend = self.pending
        if pend is not None and pend["nonce"] == nonce and pend["kind"] == kind:
            # A retransmission (the host missed our answer): the same key again, or the host
            # would certify a key we no longer hold.
            seed, pub = pend["seed"], pend["pub"]
        else:
            seed = self.rt.hal.random_bytes(32)
            pub = ed25519.public_key(seed)
            try:
                # Cannot fail for a sound key pair (a clamped scalar never gives a weak
                # point): a refusal here means broken hardware or code, not a bad host.
                check_public(pub)
            except ValueError as exc:
                refuse(C.E_HARDWARE, "the new device key is unusable (%s): this board's RNG "
                       "or Ed25519 code is faulty; do not provision it" % exc)
            self.pending = {"seed": seed, "pub": pub, "nonce": nonce, "kind": kind,
                            "fleet": fleet, "schema": self._schema(kind)}
        self.pending["ca"] = ca
        payload = {C.K_RE: msg.seq, C.K_PUB: pub, C.K_HWID: self.rt.hal.unique_id(),
                   C.K_BOARD: self.rt.hal.NAME, C.K_NONCE: nonce}
        return envelope.signed(C.PROV_KEY, payload, seed, pub, self.rt.dev.next_seq(),
                               self._sender())

    def commit(self, msg):
        pend = self.pending
        p = msg.payload
        if pend is None or p.get(C.K_NONCE) != pend["nonce"]:
            refuse(C.E_INVALID_STATE, "no provisioning session with that nonce: start again "
                   "with PROV_BEGIN")
        net = p.get(C.K_NET)
        netcfg = None if net is None else self._netcfg()
        anchors = self._anchors(p.get(C.K_ANCHORS), p.get(C.K_EPOCH, 0), p.get(C.K_REVOKED, []),
                                pend["pub"])
        cert = p.get(C.K_CERT)
        fields = self._certificate(cert, anchors[C.ROLE_FLEET][0], pend)
        try:
            config = schema.validate(pend["schema"], p.get(C.K_CONFIG, {}))
        except ValueError as exc:
            refuse(C.E_BAD_REQUEST, "config: %s" % exc)
        records = {"config": config}
        if net is not None:
            try:
                records["net"] = netcfg.validate(self._with_ca(net, pend["ca"]))
            except ValueError as exc:
                refuse(C.E_BAD_REQUEST, "network: %s" % exc)
        identity = {"id": fields[C.K_DEVICE_ID], "seed": pend["seed"], "pub": pend["pub"],
                    "kind": pend["kind"], "fleet": pend["fleet"],
                    "site": fields.get(C.K_SITE, "")}
        records["identity"] = identity
        records["cert"] = cert
        records["anchors"] = anchors
        self.rt.dev.store.commit(records)
        self.pending = None
        payload = {C.K_RE: msg.seq, C.K_DEVICE_ID: identity["id"], C.K_STATE: "provisioned"}
        body = envelope.signed(C.PROV_DONE, payload, pend["seed"], pend["pub"],
                               self.rt.dev.next_seq(), identity["id"])
        self.rt.agent.after_reply = lambda: self.rt.hal.reset("provisioned")   # then the app
        return body

    def _schema(self, kind):
        # Loaded at PROV_BEGIN, not at the commit: the heap is still in one piece here; at
        # the commit it is strewn with what the certificate's verification left. Loaded
        # there, it failed for 1280 bytes with 71 KB free, 3 to 5 runs in 10 on the 64-bit
        # emulator at 0.70 (its bytecode and names load into the heap there; on a board,
        # frozen, only its dict does: docs/memory.md).
        gc.collect()
        return self.rt.schema_for(kind)

    def _netcfg(self):
        # Only a device given a network config needs it, and it is imported before the
        # certificate's check, for the reason the schema is loaded early (above): imported
        # after it, it failed with `busy: out of memory` on 1.2% of a 1,000-board street
        # provisioned with a broker on a loaded host.
        gc.collect()
        import netcfg
        return netcfg

    def _ca(self, ca):
        # SPEC 13.6: the mqtts broker's CA rides in PROV_BEGIN (PROV_COMMIT is full on a
        # 1 KB-frame board); held in RAM until the commit names it, written only then.
        if ca is None:
            return None
        import netcfg
        try:
            return netcfg.ca_der(ca)
        except ValueError as exc:
            refuse(C.E_BAD_REQUEST, "PROV_BEGIN: %s" % exc)

    def _with_ca(self, net, ca):
        """K_NET names the CA by its SHA-256: the one this session's PROV_BEGIN carried."""
        if not isinstance(net, dict) or "ca_sha256" not in net:
            return net
        import hashlib
        want = net["ca_sha256"]
        if ca is None or hashlib.sha256(ca).digest() != want:
            raise ValueError("ca_sha256 names no CA this session received: send it in "
                             "PROV_BEGIN (K_CA)")
        net = dict(net)
        del net["ca_sha256"]
        net["ca"] = ca
        return net

    def _anchors(self, anchors, epoch, revoked, pend_pub):
        if not isinstance(anchors, dict) or not isinstance(epoch, int):
            refuse(C.E_BAD_REQUEST, "anchors must be a map of role to public keys")
        if not isinstance(revoked, list) or len(revoked) > 16 or \
                not all(isinstance(k, bytes) and len(k) == 8 for k in revoked):
            refuse(C.E_BAD_REQUEST, "revoked: at most 16 key ids of 8 bytes")
        out = {"epoch": epoch, "revoked": revoked}
        for role, most in ((C.ROLE_FLEET, 1), (C.ROLE_FIRMWARE, 2), (C.ROLE_OPERATOR, 2)):
            keys = anchors.get(role)
            if not isinstance(keys, list) or not 1 <= len(keys) <= most or \
                    not all(isinstance(k, bytes) and len(k) == 32 for k in keys):
                refuse(C.E_BAD_REQUEST, "anchors: %s needs 1..%d 32-byte keys" % (role, most))
            out[role] = keys
        check_anchor_keys(out, pend_pub)
        return out

    def _certificate(self, cert, fleet_pub, pend):
        if not isinstance(cert, bytes):
            refuse(C.E_BAD_REQUEST, "certificate missing")
        try:
            protected, pbytes, payload, sig = cose.parse(cbor.loads(cert))
            cose.check_signature(pbytes, payload, sig, fleet_pub)
            fields = cbor.loads(payload)
        except ValueError:
            refuse(C.E_BAD_SIGNATURE, "certificate is not signed by the fleet key it came with")
        if protected.get(C.HDR_TYPE) != C.DOC_DEVICE_CERT or not isinstance(fields, dict):
            refuse(C.E_BAD_REQUEST, "not a device certificate")
        hal = self.rt.hal
        if fields.get(C.K_PUB) != pend["pub"] or fields.get(C.K_HWID) != hal.unique_id() \
                or fields.get(C.K_KIND) != pend["kind"] or fields.get(C.K_BOARD) != hal.NAME:
            refuse(C.E_BAD_REQUEST, "certificate is for another key, board or kind")
        dev_id = fields.get(C.K_DEVICE_ID)
        if not isinstance(dev_id, str) or not 1 <= len(dev_id) <= 32:
            refuse(C.E_BAD_REQUEST, "certificate has no valid device id")
        return fields
