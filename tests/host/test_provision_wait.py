"""After PROV_COMMIT the device reboots into its app; the host HELLOs until a CAPS signed by
the new key comes. A device that takes longer than the first attempt to answer (it signs its
CAPS; a slow board, or a loaded host's emulated boards) must still be heard: a 1,000-board
street on a 2-core host had 199 boards fail here, each answer arriving after its 0.4 s
attempt had been given up, every attempt alike."""
import time

import pytest

from edgekit import catalog as C
from edgekit.errors import LinkError
from edgekit.provision import flow
from edgekit.transport.port_runner import run_per_port


class _Caps:
    role = C.ROLE_DEVICE
    payload = {C.K_STATE: "provisioned"}


class SlowDevice:
    """Answers HELLO `answer_s` after it is sent: an attempt shorter than that hears nothing
    (its answer would come after the host gave up on it)."""

    def __init__(self, answer_s, boot_s=0.0):
        self.answer_s, self.ready_at = answer_s, time.monotonic() + boot_s
        self.retries, self.device_keys, self.attempts = 2, None, []
        self.timeout = 5.0              # the session's answer timeout (--timeout)

    def hello(self, timeout):
        self.attempts.append(timeout)
        if time.monotonic() < self.ready_at or timeout < self.answer_s:
            time.sleep(timeout)
            raise LinkError(f"no answer from the device after 1 attempts of {timeout:.1f} s")
        time.sleep(self.answer_s)
        return _Caps()


def test_a_device_slower_than_the_first_attempt_is_heard():
    device = SlowDevice(answer_s=0.6)
    caps = flow.wait_for_boot(device, b"\x01" * 32, timeout=10)
    assert caps.payload[C.K_STATE] == "provisioned"
    assert device.attempts[0] == pytest.approx(0.4) and device.attempts[-1] >= 0.6
    assert device.retries == 2          # the session's own retries are given back


def test_a_booting_device_is_waited_for_and_a_silent_one_is_named():
    booting = SlowDevice(answer_s=0.05, boot_s=1.0)
    assert flow.wait_for_boot(booting, b"\x01" * 32, timeout=10)
    silent = SlowDevice(answer_s=99)
    started = time.monotonic()
    with pytest.raises(LinkError, match="did not come back signed after reboot.*rerun"):
        flow.wait_for_boot(silent, b"\x01" * 32, timeout=2)
    assert time.monotonic() - started < 4      # the deadline holds, attempts clipped to it
    assert max(silent.attempts) <= 3.0


def test_a_failed_port_reports_the_step_it_failed_in():
    def work(port):
        exc = LinkError("no answer")
        exc.step = "commit"
        raise exc
    [result] = run_per_port(["p"], work, 1)
    assert result["ok"] is False and result["step"] == "commit"
