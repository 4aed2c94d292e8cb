# The one catalogue of edgekit protocol v1 numbers: message types, error codes, header and
# payload labels. Plain integer constants so CPython (host) and MicroPython (device) import
# the same file; the device build copies it to /lib/catalog.py. protocol/SPEC.md is normative
# for meaning; this file is normative for numbers. Never renumber: add. Only plain
# `NAME = value` lines: the host imports a written-out copy (`make catalog` regenerates it;
# tests/host/test_catalog_generated.py fails until it is current).

PROTOCOL_VERSION = 1

# --- COSE (RFC 9052) -------------------------------------------------------------------
TAG_COSE_SIGN1 = 18
COSE_ALG = 1            # protected header: algorithm
COSE_KID = 4            # protected header: key id (bstr, 8 bytes, see SPEC "Key ids")
ALG_EDDSA = -8          # EdDSA with Ed25519
# Private-use header labels (RFC 9052 section 3.1: labels < -65536 are private use).
HDR_TYPE = -65537       # message type (int, below)
HDR_SEQ = -65538        # sender's sequence number (uint, strictly increasing per key)
HDR_SENDER = -65539     # sender id (tstr, 1..32 ASCII)

# --- Message types (HDR_TYPE; element 0 of an unsigned envelope) ------------------------
# Requests are host->device unless noted; responses device->host.
HELLO = 0x01            # any state, may be unsigned            -> CAPS
CAPS = 0x02             # capabilities (signed once provisioned)
ACK = 0x03              # generic success: {K_RE}
ERROR = 0x04            # generic failure: {K_RE, K_CODE, K_MSG}

PROV_BEGIN = 0x10       # factory state, unsigned: start a session -> PROV_KEY
PROV_KEY = 0x11         # device's new public key, signed by that key (proof of possession)
PROV_COMMIT = 0x12      # certificate, config, trust anchors       -> PROV_DONE
PROV_DONE = 0x13        # device committed atomically; reboots into its app
REPROVISION = 0x14      # operator-signed: return a provisioned device to factory state

CONFIG_GET = 0x20       # -> CONFIG
CONFIG = 0x21
CONFIG_SET = 0x22       # operator-signed                          -> ACK
TELEMETRY_FETCH = 0x30  # -> TELEMETRY
TELEMETRY = 0x31        # signed by the device key; SenML records
TELEMETRY_ACK = 0x32    # operator-signed: records up to K_UPTO may leave the journal
EVENT = 0x38            # device->host push: event or alarm (set/clear)
EVENT_FETCH = 0x39      # -> EVENTS
EVENTS = 0x3A
EVENT_ACK = 0x3B
COMMAND = 0x40          # operator-signed app command (valve, price table, ...) -> COMMAND_RESULT
COMMAND_RESULT = 0x41
TIME_SYNC = 0x48        # operator-signed: set the device clock   -> TIME
TIME = 0x49
LOG_FETCH = 0x50        # -> LOG
LOG = 0x51
REBOOT = 0x58           # operator-signed                          -> ACK, then reset
KEY_EPOCH = 0x60        # fleet-root-signed: rotate/revoke operator and firmware keys -> ACK

# OTA: numbers reserved here, defined fully in SPEC "OTA".
OTA_OFFER = 0x70        # operator-signed, carries the firmware-signed manifest -> OTA_STATUS
OTA_STATUS = 0x71       # device: held ranges / file digests
OTA_CHUNK = 0x72        # unsigned bulk data, covered by the manifest digests
OTA_CHUNK_ACK = 0x73    # unsigned, cumulative + selective ack
OTA_INSTALL = 0x74      # operator-signed: switch to the staged slot
OTA_RESULT_FETCH = 0x75
OTA_RESULT = 0x76       # device-signed update-result record
OTA_ABORT = 0x77

# Signed documents (not link messages, but COSE_Sign1 with the same header layout):
DOC_DEVICE_CERT = 0x80  # fleet root over the device's identity and public key
DOC_KEY_CERT = 0x81     # fleet root over an operator or firmware public key
DOC_VOUCHER = 0x82      # operator over a water-ATM credit voucher
DOC_OTA_MANIFEST = 0x83 # firmware key over an OTA manifest
DOC_UPDATE_RESULT = 0x84  # device key over an OTA update-result record

# Types a receiver accepts without a signature (everything else must be COSE_Sign1).
UNSIGNED_OK = (HELLO, CAPS, ACK, ERROR, PROV_BEGIN, PROV_COMMIT, OTA_CHUNK, OTA_CHUNK_ACK,
               OTA_STATUS)

# --- Error codes (K_CODE of ERROR) ------------------------------------------------------
E_BAD_FRAME = 1         # COBS/escape structure invalid
E_BAD_CRC = 2           # CRC-32 trailer mismatch
E_BAD_CBOR = 3          # not well-formed or not deterministic CBOR, dup keys, bad UTF-8, tag
E_TOO_LARGE = 4         # frame or item longer than the receiver's limit
E_BAD_SIGNATURE = 5
E_UNKNOWN_KEY = 6       # kid not among the receiver's trust anchors (or revoked)
E_REPLAYED = 7          # seq at or below the last accepted from that key
E_UNKNOWN_TYPE = 8
E_NOT_PROVISIONED = 9
E_UNAUTHORIZED = 10     # valid signature, but that key's role may not send this type
E_BUSY = 11
E_BAD_REQUEST = 12      # payload violates the message schema / config schema
E_ALREADY_PROVISIONED = 13
E_UNSUPPORTED_VERSION = 14
E_STORAGE = 15          # flash full or write failed; nothing was changed
E_INTERNAL = 16
E_WRONG_TARGET = 17     # OTA bundle for another board/kind/runtime
E_ROLLBACK = 18         # OTA sequence not above the installed one
E_DIGEST_MISMATCH = 19
E_NO_SPACE = 20
E_INVALID_STATE = 21    # request not valid in the current state
E_NOT_FOUND = 22
E_TIMEOUT = 23
E_HARDWARE = 24         # peripheral did not answer (I2C NACK, stuck sensor)
E_TOO_DEEP = 25         # CBOR nesting beyond the limit
E_EXPIRED = 26          # message or voucher past its validity

ERROR_NAMES = {
    1: "bad_frame", 2: "bad_crc", 3: "bad_cbor", 4: "too_large", 5: "bad_signature",
    6: "unknown_key", 7: "replayed", 8: "unknown_type", 9: "not_provisioned",
    10: "unauthorized", 11: "busy", 12: "bad_request", 13: "already_provisioned",
    14: "unsupported_version", 15: "storage", 16: "internal", 17: "wrong_target",
    18: "rollback", 19: "digest_mismatch", 20: "no_space", 21: "invalid_state",
    22: "not_found", 23: "timeout", 24: "hardware", 25: "too_deep", 26: "expired",
}

# --- Payload map keys (shared key space, small ints keep frames short) ------------------
K_RE = 0                # seq of the request this answers
K_CODE = 1
K_MSG = 2
K_PROTO = 3             # protocol version(s) supported: uint or [min, max]
K_BOARD = 4             # board name, e.g. "esp32"
K_KIND = 5              # device kind, e.g. "water_meter"
K_FW = 6                # firmware version "MAJOR.MINOR.PATCH"
K_MAX_FRAME = 7         # largest frame body (bytes) the sender accepts
K_WINDOW = 8            # frames the sender accepts in flight
K_FREE_HEAP = 9
K_STATE = 10            # "factory" | "provisioned" | "trial" (OTA)
K_DEVICE_ID = 11
K_HWID = 12             # hardware unique id (bstr)
K_PUB = 13              # Ed25519 public key (bstr 32)
K_CERT = 14             # device certificate (COSE_Sign1 bstr)
K_CONFIG = 15           # config map (tstr keys)
K_ANCHORS = 16          # trust anchors: {role: [pubkey bstr, ...]}
K_RECORDS = 17          # SenML pack or list of records
K_FROM = 18             # first journal sequence requested / contained
K_UPTO = 19             # last journal sequence (inclusive)
K_COUNT = 20
K_TIME = 21             # unix seconds (uint) or null when unsynced
K_NAME = 22             # command / key / event name
K_ARGS = 23
K_RESULT = 24
K_NONCE = 25            # bstr 16, binds a response to a session
K_FLEET = 26            # fleet id (tstr)
K_ROLE = 27
K_EPOCH = 28            # key epoch number (uint)
K_REVOKED = 29          # list of revoked kids
K_UPTIME = 30           # milliseconds since boot
K_RESET_CAUSE = 31
K_DROPPED = 32          # records evicted before delivery (counted, reported)
K_MORE = 33             # bool: more records remain
K_LEVEL = 34            # log level / alarm severity
K_ACTIVE = 35           # alarm state: true set, false cleared
K_DURATION = 36         # seconds an alarm has lasted
K_RUNTIME = 37          # MicroPython version string, e.g. "1.29.0"
K_SITE = 38
K_LOCATION = 39         # [lat, lon]
K_ISSUED = 40           # unix seconds
K_SLOT = 41             # OTA slot "a" | "b"
K_FILES = 42            # OTA: list of file entries
K_OFFSET = 43
K_DATA = 44
K_CRC = 45
K_MANIFEST = 46
K_RANGES = 47           # held byte ranges [[start, end), ...]
K_VERSION = 48          # semantic version tstr
K_OTA_SEQ = 49          # manifest sequence (anti-rollback)
K_DIGEST = 50           # SHA-256 bstr
K_SIZE = 51
K_STATUS = 52

# Key roles (K_ROLE, keys of K_ANCHORS)
ROLE_FLEET = "fleet"
ROLE_FIRMWARE = "firmware"
ROLE_OPERATOR = "operator"
ROLE_DEVICE = "device"

# --- SenML CBOR labels (RFC 8428 section 6, Table 6) -------------------------------------
SENML_BVER = -1
SENML_BN = -2
SENML_BT = -3
SENML_BU = -4
SENML_BV = -5
SENML_BS = -6
SENML_N = 0
SENML_U = 1
SENML_V = 2
SENML_VS = 3
SENML_VB = 4
SENML_S = 5
SENML_T = 6
SENML_UT = 7
SENML_VD = 8

# --- Limits (defaults; a board may advertise a smaller max frame) -------------------------
MAX_DEPTH = 16          # CBOR nesting limit
MAX_FRAME_DEFAULT = 1024
MAX_FRAME_LIMIT = 4096  # no receiver accepts a body larger than this

# --- Who may sign what (SPEC section 5): the role whose key must sign each signed type ----
# Messages to a device: a signature by any other role's key is `unauthorized`.
SIGNER_ROLES = {
    REPROVISION: (ROLE_OPERATOR,),
    CONFIG_SET: (ROLE_OPERATOR,),
    CONFIG_GET: (ROLE_OPERATOR,),
    TELEMETRY_FETCH: (ROLE_OPERATOR,),
    TELEMETRY_ACK: (ROLE_OPERATOR,),
    EVENT_FETCH: (ROLE_OPERATOR,),
    EVENT_ACK: (ROLE_OPERATOR,),
    COMMAND: (ROLE_OPERATOR,),
    TIME_SYNC: (ROLE_OPERATOR,),
    LOG_FETCH: (ROLE_OPERATOR,),
    REBOOT: (ROLE_OPERATOR,),
    KEY_EPOCH: (ROLE_FLEET,),
    # The manifest inside is signed by the (offline) firmware key; the offer that carries
    # it is sent by an operator, so the operator key signs the message itself.
    OTA_OFFER: (ROLE_OPERATOR,),
    OTA_INSTALL: (ROLE_OPERATOR,),
    OTA_RESULT_FETCH: (ROLE_OPERATOR,),
    OTA_ABORT: (ROLE_OPERATOR,),
    DOC_DEVICE_CERT: (ROLE_FLEET,),
    DOC_KEY_CERT: (ROLE_FLEET,),
    DOC_VOUCHER: (ROLE_OPERATOR,),
    DOC_OTA_MANIFEST: (ROLE_FIRMWARE,),
    # Messages from a device are signed by its device key.
    CAPS: (ROLE_DEVICE,), ACK: (ROLE_DEVICE,), ERROR: (ROLE_DEVICE,),
    PROV_KEY: (ROLE_DEVICE,), PROV_DONE: (ROLE_DEVICE,), CONFIG: (ROLE_DEVICE,),
    TELEMETRY: (ROLE_DEVICE,), EVENT: (ROLE_DEVICE,), EVENTS: (ROLE_DEVICE,),
    COMMAND_RESULT: (ROLE_DEVICE,), TIME: (ROLE_DEVICE,), LOG: (ROLE_DEVICE,),
    OTA_STATUS: (ROLE_DEVICE,), OTA_RESULT: (ROLE_DEVICE,), DOC_UPDATE_RESULT: (ROLE_DEVICE,),
}

# --- OTA (SPEC section 9; appended by the OTA issue) --------------------------------------
K_ENCODING = 53         # OTA file entry: transfer form, "deflate" (zlib stream) when present
K_XSIZE = 54            # OTA file entry: bytes of the transfer form (when it is compressed)
K_POLICY = 55           # OTA manifest: install policy; "test-confirm" is the one defined
K_DEADLINE = 56         # OTA manifest: seconds a trial image has to pass its health checks
OTA_POLICY_TEST_CONFIRM = "test-confirm"
OTA_MANIFEST_MAX = 4096     # largest manifest (COSE_Sign1 bytes) a device accepts
OTA_FILES_MAX = 64          # most files one manifest may list

# --- Water ATM credit vouchers (SPEC section 10; appended by the device-kinds issue) ------
K_SERIAL = 57           # voucher: serial number for its kiosk, 1..2^32-1 (redeemable once)
K_AMOUNT = 58           # voucher: credit in the kiosk's money units (integer > 0)
K_EXPIRES = 59          # voucher: unix seconds after which the kiosk refuses it
K_CARD = 60             # voucher: the card UID it may be credited to (bstr), optional
VOUCHER_MAX = 384       # largest voucher (COSE_Sign1 bytes) a kiosk accepts
VOUCHER_WINDOW = 512    # serials accepted below the highest redeemed (older: refused)
VOUCHER_PREFIX = "EKV1:"    # QR text: prefix + standard base64 of the COSE_Sign1 bytes

# --- The network path (SPEC section 13; appended by the fleet issue) ----------------------
K_NET = 61              # PROV_COMMIT: the device's network config (SPEC 13.5), never answered
K_CA = 62               # PROV_BEGIN: the mqtts:// broker's CA certificate (DER), held until the
                        # commit's K_NET names its SHA-256 (it does not fit PROV_COMMIT's frame)
