"""Host key management: the fleet, firmware and operator keys (SPEC section 5)."""
