"""The smart bin and the water ATM run their whole workload (hil_tests/kinds_workloads.py)
within their board's heap with the headroom test_heap_headroom.py requires of every app: the
emulator gives the VM only HEADROOM_SCALE of the board's heap (plus the frozen-firmware
allowance). bench/bench_apps.py bisects the smallest share each needs."""
import pytest

from edgekit.hil.devices import provision
from edgekit.hil.targets import BoardSpec, EmulatedTarget
from kinds_workloads import WORKLOADS
from test_heap_headroom import BOARDS, HEADROOM_SCALE


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
@pytest.mark.parametrize("board_name", BOARDS)
def test_kind_runs_within_its_heap_with_headroom(edgekit_emulator, hil_fleet, board_name,
                                                 kind):
    target = EmulatedTarget(edgekit_emulator, BoardSpec(f"emu:{board_name}:{kind}"),
                            heap_scale=HEADROOM_SCALE[board_name])
    try:
        dev = provision(target, hil_fleet, kind)
        diag = WORKLOADS[kind](target, dev)
        assert diag["task_errors"] == 0, diag
        assert target.boots() == 2, "the board rebooted during the workload (out of memory?)"
        assert diag["heap_free"] > 0
        dev.close()
    finally:
        target.close()
