"""Sign a bundle's manifest with the firmware key (`edgekit ota sign`).

Runs on the offline release machine: it needs the bundle and the key directory holding the
firmware key, nothing else (no operator key, no registry, no device). It refuses to sign a
bundle whose payloads do not match their manifest: a signature vouches for the files.
"""
from edgekit import catalog as C
from edgekit.ota import manifest as man
from edgekit.ota.bundle import Bundle, BundleError


def sign_bundle(bundle: Bundle, signer, seq: int) -> Bundle:
    """A copy of `bundle` with its manifest signed by `signer` (a firmware-role signer)."""
    role = getattr(signer, "role", C.ROLE_FIRMWARE)
    if role != C.ROLE_FIRMWARE:
        raise BundleError(f"manifests are signed with the firmware key, not the {role} key "
                          "(SPEC 5): load the firmware key")
    bundle.check_payloads()
    manifest_bytes = man.sign(bundle.manifest_payload, signer, seq)
    if len(manifest_bytes) > C.OTA_MANIFEST_MAX:
        raise BundleError(f"the signed manifest is {len(manifest_bytes)} bytes; devices accept "
                          f"at most {C.OTA_MANIFEST_MAX}: put fewer files in the bundle")
    return Bundle(bundle.manifest_payload, bundle.payloads, manifest_bytes)


def sign_with_keystore(bundle: Bundle, keystore, passphrase: str) -> Bundle:
    # The payloads are checked before the key's counter moves: a refused bundle leaves the
    # key directory as it was.
    try:
        bundle.check_payloads()
    except BundleError as exc:
        raise bundle.named(exc) from None
    signer = keystore.signer(C.ROLE_FIRMWARE, passphrase)
    try:
        return sign_bundle(bundle, signer, keystore.next_seq(C.ROLE_FIRMWARE))
    except BundleError as exc:
        raise bundle.named(exc) from None


def trusted_firmware_keys(keystore) -> list:
    """The firmware public keys devices trust now (current, and previous during rotation)."""
    return list(keystore.anchors()["anchors"][C.ROLE_FIRMWARE])
