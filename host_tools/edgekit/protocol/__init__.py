"""The edgekit protocol on the host: CBOR, COSE, framing, messages, test vectors."""
