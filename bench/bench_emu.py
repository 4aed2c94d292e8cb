"""Emulator figures: cold boot, simulated speed, link throughput, mpremote fs cp, fleet memory.

    python bench/bench_emu.py                 # everything, fleet of 200
    EDGEKIT_BENCH_FLEET=50 python bench/bench_emu.py
    python bench/bench_emu.py --meter 5       # only the provisioned meter against its HAL
                                              # floor, with and without leases, 5 runs of
                                              # 2 simulated days, medians
    python bench/bench_emu.py --kinds         # the kiosk, air node and bin idle, paused,
                                              # with and without leases

No asserts on time: every figure is printed with a reference measured in the same run (a bare
`micropython -c pass` start, the nominal 115200-baud byte rate, the fs cp rate FACTS.md
records for a TCP link throttled to 115200 baud).
"""
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import serial

from edgekit.emu import Emulator, scratch
from edgekit.paths import micropython_binary

FLEET = int(os.environ.get("EDGEKIT_BENCH_FLEET", "200"))
NOMINAL_BPS = 115200 / 10           # 8N1: ten bit times per byte
FACTS_FSCP_KBPS = {"text": 2.72, "binary": 2.26}   # /work/shared/FACTS.md, unix VM resume


def read_until(port, marker, timeout=20.0):
    data = b""
    end = time.monotonic() + timeout
    while marker not in data:
        if time.monotonic() > end:
            raise RuntimeError(f"no {marker!r} within {timeout} s: {data[-200:]!r}")
        data += port.read(max(1, port.in_waiting))
    return data


def bare_vm_start_ms(n=10):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([micropython_binary(), "-c", "pass"], check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def cold_boot_ms(emu, n=10):
    """Board start request -> first REPL prompt on the TCP link (bare board)."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        b = emu.start("esp32", bare=True)
        port = serial.serial_for_url(b.url, timeout=0.01)
        read_until(port, b">>> ")
        times.append((time.perf_counter() - t0) * 1000)
        port.close()
        b.stop()
    return statistics.median(times)


def firmware_boot_ms(emu, n=5):
    """Board start -> the firmware runtime asleep in its main loop (first hal.wait)."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        b = emu.start("esp32", kind="water_meter", time="paused")
        b.wait_for(lambda i: i["state"] == "asleep", timeout=30, interval=0.002)
        times.append((time.perf_counter() - t0) * 1000)
        b.stop()
    return statistics.median(times)


MINUTE_APP = """
import hal
while True:
    hal.wait(60000)
"""

TX_APP = """
import hal, micropython
micropython.kbd_intr(-1)
block = bytes(range(256)) * 4
buf = bytearray(1)
got = 0
while True:
    if not hal.wait(1000):
        continue
    while hal.link.readinto(buf):
        if buf[0] == ord("!"):
            for _ in range(%d):
                hal.link.write(block)
        elif buf[0] == ord("?"):
            hal.link.write(b"RX%%d\\n" %% got)
            got = 0
        else:
            got += 1
"""


def sim_speed(emu, flash, seconds=3.0):
    (flash / "main.py").write_text(MINUTE_APP)
    b = emu.start("esp32", flash=flash)
    b.wait_for(lambda i: i["state"] == "asleep")
    s0, t0 = b.now(), time.monotonic()
    c0 = os.times()
    time.sleep(seconds)
    s1, t1 = b.now(), time.monotonic()
    c1 = os.times()
    b.stop()
    cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0)
    return (s1 - s0) / (t1 - t0), cpu


def firmware_sim_speed(emu, seconds=3.0):
    b = emu.start("esp32", kind="water_meter")
    b.wait_for(lambda i: i["state"] in ("asleep", "running") and i["sim_s"] > 1)
    s0, t0 = b.now(), time.monotonic()
    time.sleep(seconds)
    speed = (b.now() - s0) / (time.monotonic() - t0)
    b.stop()
    return speed


# What a provisioned meter asks of the HAL each wake (a wait, a watchdog feed, both flow
# counters and the tamper input, a few clock reads), with no firmware around it: the floor a
# provisioned meter's speed is measured against.
HAL_FLOOR_APP = """
import hal
hal.wdt_start(120000)
while True:
    hal.wait(60000)
    hal.wdt_feed()
    hal.pulse_count("flow"); hal.pulse_count("flow_rev"); hal.input("tamper")
    for _ in range(10):
        hal.ticks_ms()
"""

YEAR_S = 365 * 86400


def _vm_cpu_s(pid):
    # schedstat's first field is the time on a CPU in ns; stat's are in clock ticks (10 ms),
    # which moved a HAL floor's 90 ms of VM time over 2 simulated days by 10%.
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def leases(on):
    """Boards started inside run with leases (paused time, hal_ops.lease) on or off."""
    old = os.environ.get("EDGEKIT_EMU_LEASE")
    os.environ["EDGEKIT_EMU_LEASE"] = "1" if on else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["EDGEKIT_EMU_LEASE"]
        else:
            os.environ["EDGEKIT_EMU_LEASE"] = old


def _paused_speed(b, days):
    """Simulated s per wall s over `days` of an advance, VM/supervisor CPU per wake, and
    round trips per wake (side-channel requests the VM waited for an answer to: a count, the
    same on any machine). Wakes: those that ended in a round trip and those run on a lease."""
    i0 = b.info()
    pid = i0["pid"]
    v0, c0, t0 = _vm_cpu_s(pid), time.process_time(), time.perf_counter()
    b.advance(days * 86400)
    wall = time.perf_counter() - t0
    i1 = b.info()
    wakes = max(1, i1["parks"] - i0["parks"] + i1["lease_wakes"] - i0["lease_wakes"])
    return (days * 86400 / wall, (_vm_cpu_s(pid) - v0) / wakes * 1e6,
            (time.process_time() - c0) / wakes * 1e6,
            (i1["side_replies"] - i0["side_replies"]) / wakes)


def provisioned_meter_speed(emu, tmp, days=3, virtual_s=3.0, lease=True):
    """A provisioned water meter (esp32s3_psram, as the field runs it) with flow, paused time,
    against the bare HAL loop above on the same board in the same run; then `virtual_s` wall
    seconds of it in virtual time (0: not measured, None returned). `lease`: leases on for
    both (the floor's loop takes them too)."""
    with leases(lease):
        return _provisioned_meter_speed(emu, tmp, days, virtual_s)


def _provisioned_meter_speed(emu, tmp, days, virtual_s):
    from edgekit.hil.devices import HilFleet, provision
    from edgekit.hil.targets import BoardSpec, EmulatedTarget
    (tmp / "floor").mkdir()
    (tmp / "floor" / "main.py").write_text(HAL_FLOOR_APP)
    floor = emu.start("esp32s3_psram", kind="water_meter", time="paused", flash=tmp / "floor")
    floor.wait_for(lambda i: i["state"] == "asleep")
    floor.set(flow_lpm=2)
    floor.advance(3600)
    ref = _paused_speed(floor, days)
    floor.stop()
    target = EmulatedTarget(emu, BoardSpec("emu:esp32s3_psram:water_meter"), time_mode="paused")
    dev = provision(target, HilFleet(tmp), "water_meter")
    dev.close()
    b = target.handle
    b.set(flow_lpm=2)
    b.advance(3600)
    paused = _paused_speed(b, days)
    info = b.info()
    virtual = None
    if virtual_s:
        b.set_time_mode("virtual")
        s0, t0 = b.now(), time.monotonic()
        time.sleep(virtual_s)
        virtual = (b.now() - s0) / (time.monotonic() - t0)
    b.stop()
    return ref, paused, virtual, info


def flash_write_rename_us(directory, n=500):
    """What one crash-safe flash write costs the host: a 200-byte write-new + rename over the
    old copy, as firmware/storage/store.py does on the emulated flash."""
    path = os.path.join(directory, "rec")
    t0 = time.perf_counter()
    for _ in range(n):
        with open(path + ".new", "wb") as f:
            f.write(b"x" * 200)
        os.rename(path + ".new", path)
    return (time.perf_counter() - t0) / n * 1e6


def meter_speed_flash_on_disk(tmp, days=1):
    """The provisioned meter again, its flash in the system temp dir (on disk) instead of the
    emulator's default RAM directory (edgekit.emu.scratch): what the move bought."""
    from edgekit.hil.devices import HilFleet, provision
    from edgekit.hil.targets import BoardSpec, EmulatedTarget
    with tempfile.TemporaryDirectory(prefix="edgekit-emu-disk-") as state, \
            Emulator(state_dir=state) as emu:
        target = EmulatedTarget(emu, BoardSpec("emu:esp32s3_psram:water_meter"),
                                time_mode="paused")
        try:
            provision(target, HilFleet(tmp / "disk"), "water_meter").close()
            target.handle.set(flow_lpm=2)
            target.handle.advance(3600)
            return _paused_speed(target.handle, days)
        finally:
            target.close()


def kinds_paused_speed(emu, tmp, days=0.25):
    """The other kinds provisioned on a plain ESP32 in paused time, idle (their own polling:
    the kiosk's card reader and scanner every 500 ms, the air node's sensors, the bin's
    sonar): speed and round trips per wake, the count a prefetched read saves."""
    from edgekit.hil.devices import HilFleet, provision
    from edgekit.hil.targets import BoardSpec, EmulatedTarget
    out = {}
    for kind in ("water_atm", "env_sensor", "smart_bin"):
        for lease in (True, False):
            with leases(lease):
                target = EmulatedTarget(emu, BoardSpec(f"emu:esp32:{kind}"),
                                        time_mode="paused")
            try:
                provision(target, HilFleet(tmp / f"{kind}-{lease}"), kind).close()
                target.handle.advance(3600)
                out[kind, lease] = _paused_speed(target.handle, days)
            finally:
                target.close()
    return out


def link_throughput(emu, flash, kib=64):
    (flash / "main.py").write_text(TX_APP % kib)
    b = emu.start("esp32", flash=flash)
    port = serial.serial_for_url(b.url, timeout=0.05)
    time.sleep(0.3)
    port.reset_input_buffer()
    total = kib * 1024
    port.write(b"!")
    got = port.read(1)
    while not got:
        got = port.read(1)
    t0 = time.perf_counter()          # clock starts at the first byte: latency excluded
    while len(got) < total:
        got += port.read(total - len(got))
    tx = (total - 1) / (time.perf_counter() - t0)
    # host -> board: the board counts what arrived, then reports
    payload = bytes(i % 90 + 35 for i in range(total)).replace(b"!", b"#").replace(b"?", b"#")
    t0 = time.perf_counter()
    port.write(payload)
    port.flush()
    port.write(b"?")
    line = read_until(port, b"\n", timeout=60)
    rx = total / (time.perf_counter() - t0)
    received = int(line.split(b"RX")[1])
    port.close()
    b.stop()
    return tx, rx, received == total


def fs_cp(emu, tmp, kind):
    b = emu.start("esp32")
    src = Path(tmp) / f"fifty-{kind}.bin"
    if kind == "text":
        src.write_bytes((b"edgekit water meter telemetry line 0123456789\n" * 2000)[:50 * 1024])
    else:
        src.write_bytes(os.urandom(50 * 1024))
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
               + os.environ.get("PATH", ""))
    subprocess.run([sys.executable, "-m", "mpremote", "connect", b.url, "exec", "pass"],
                   check=True, env=env, capture_output=True)      # warm: soft reset done
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mpremote", "connect", b.url, "fs", "cp",
                    str(src), ":x.bin"], check=True, env=env, capture_output=True)
    seconds = time.perf_counter() - t0
    same = (Path(b.flash) / "x.bin").read_bytes() == src.read_bytes()
    b.stop()
    return 50 / seconds, seconds, same


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fleet_memory(emu, count):
    t0 = time.monotonic()
    boards = emu.fleet(count, board="esp32", kind="water_meter")
    ids = {b.id for b in boards}
    deadline = time.monotonic() + 300
    while True:
        infos = [i for i in emu.boards() if i["id"] in ids]
        up = [i for i in infos if i["state"] in ("asleep", "running")]
        if len(up) == count or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    started = time.monotonic() - t0
    time.sleep(3.0)
    c0, w0 = os.times(), time.monotonic()
    s0 = [b.now() for b in boards[:10]]
    time.sleep(5.0)
    c1, w1 = os.times(), time.monotonic()
    s1 = [b.now() for b in boards[:10]]
    sup_cpu = (c1.user + c1.system - c0.user - c0.system) / (w1 - w0)
    speeds = [(b - a) / (w1 - w0) for a, b in zip(s0, s1)]
    pss = [p for p in (pss_kib(i["pid"]) for i in emu.boards() if i["id"] in ids) if p]
    sup = pss_kib(os.getpid())
    load1 = os.getloadavg()[0]
    # Stopping: half the fleet one board at a time (the reference), half in one call
    # (Emulator.stop / `emu stop --all`: every VM killed first, then all reaped).
    half = len(boards) // 2
    t0 = time.perf_counter()
    for b in boards[:half]:
        b.stop()
    one_by_one = (time.perf_counter() - t0) / max(1, half)
    t0 = time.perf_counter()
    emu.stop(boards[half:])
    together = (time.perf_counter() - t0) / max(1, len(boards) - half)
    return {"count": count, "up": len(up), "start_s": started, "pss": pss, "sup_pss": sup,
            "sup_cpu": sup_cpu, "speed": statistics.median(speeds), "load1": load1,
            "stop_each_ms": one_by_one * 1000, "stop_together_ms": together * 1000}


def print_meter_speed(ref, paused, info):
    print(f"HAL floor: a meter's HAL calls, no firmware    {ref[0]:10.0f} sim s per wall s "
          f"(paused; per wake: VM {ref[1]:.0f} us, supervisor {ref[2]:.0f} us CPU)")
    print(f"provisioned water meter, flow, paused time      {paused[0]:10.0f} sim s per wall s "
          f"({paused[0] / ref[0]:.2f}x the HAL floor; per wake: VM {paused[1]:.0f} us, "
          f"supervisor {paused[2]:.0f} us CPU, {paused[3]:.2f} round trips "
          f"(floor {ref[3]:.2f}); target 500000: "
          f"{'met' if paused[0] >= 500000 else 'not met'})")
    print(f"  a simulated year of it takes {YEAR_S / paused[0]:.0f} s of wall time; "
          f"boots {info['boots']}, resets {info['resets']}")


def print_kinds(kinds):
    for (kind, lease), (speed, vm_us, sup_us, trips) in kinds.items():
        print(f"provisioned {kind:<10}, idle, paused time    {speed:10.0f} sim s per wall s "
              f"(per wake: VM {vm_us:.0f} us, supervisor {sup_us:.0f} us CPU, "
              f"{trips:.2f} round trips) "
              + (f"with leases ({speed / kinds[kind, False][0]:.2f}x without)" if lease
                 else "without leases"))


def kinds_only():
    with Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
        print_kinds(kinds_paused_speed(emu, Path(tmp)))


def meter_only(runs, days=2):
    """The provisioned meter against its HAL floor, `runs` times (the machine's load moves
    single runs by tens of percent), with leases and then without in each run: each run,
    then the medians."""
    speeds, floors, ratios, gains = [], [], [], []
    for n in range(runs):
        with Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "on").mkdir()
            (Path(tmp) / "off").mkdir()
            ref, paused, _, info = provisioned_meter_speed(emu, Path(tmp) / "on", days=days,
                                                           virtual_s=0)
            ref0, paused0, _, info0 = provisioned_meter_speed(emu, Path(tmp) / "off",
                                                              days=days, virtual_s=0,
                                                              lease=False)
        print(f"run {n + 1} of {runs}, {days} simulated days, load average "
              f"{os.getloadavg()[0]:.1f}; with leases:")
        print_meter_speed(ref, paused, info)
        print("  without leases (EDGEKIT_EMU_LEASE=0), the same run:")
        print_meter_speed(ref0, paused0, info0)
        print(f"  leases: {paused[0] / paused0[0]:.2f}x the meter's speed without them")
        speeds.append(paused[0])
        floors.append(ref[0])
        ratios.append(paused[0] / ref[0])
        gains.append(paused[0] / paused0[0])
    print(f"median of {runs}: meter {statistics.median(speeds):.0f} sim s per wall s, HAL floor "
          f"{statistics.median(floors):.0f}, meter/floor {statistics.median(ratios):.2f}, "
          f"leases/none {statistics.median(gains):.2f}x; "
          f"target 500000: {'met' if statistics.median(speeds) >= 500000 else 'not met'}")


def main():
    print(f"emulator bench (python {sys.version.split()[0]}, {os.cpu_count()} cores)")
    ref = bare_vm_start_ms()
    print(f"reference: bare `micropython -c pass` start        {ref:8.1f} ms")
    with Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        boot = cold_boot_ms(emu)
        print(f"cold boot to first prompt (bare board, TCP)     {boot:8.1f} ms "
              f"({boot / ref:.1f}x the bare VM start)")
        fw = firmware_boot_ms(emu)
        print(f"cold boot to firmware main loop (water_meter)   {fw:8.1f} ms "
              f"({fw / ref:.1f}x the bare VM start)")
        (tmp / "a").mkdir()
        speed, cpu = sim_speed(emu, tmp / "a")
        print(f"idle board waking every 60 s, virtual time      {speed:10.0f} sim s per wall s "
              f"(supervisor CPU {cpu:.0%})")
        fspeed = firmware_sim_speed(emu)
        print(f"firmware runtime (factory state), virtual time  {fspeed:10.0f} sim s per wall s")
        ref, paused, virtual, info = provisioned_meter_speed(emu, tmp)
        print_meter_speed(ref, paused, info)
        print(f"provisioned water meter, flow, virtual time     {virtual:10.0f} sim s per wall s")
        disk = meter_speed_flash_on_disk(tmp)
        ram_dir = scratch.ram_dir()
        with tempfile.TemporaryDirectory() as on_disk:
            disk_us = flash_write_rename_us(on_disk)
        ram_us = flash_write_rename_us(emu.state_dir) if ram_dir else float("nan")
        print(f"  the same meter with its flash on disk         {disk[0]:10.0f} sim s per wall s "
              f"(VM {disk[1]:.0f} us a wake; RAM flash {paused[0] / disk[0]:.2f}x faster); "
              f"a write+rename costs {disk_us:.0f} us on disk, {ram_us:.0f} us in "
              f"{ram_dir or 'no RAM directory'}")
        print_kinds(kinds_paused_speed(emu, tmp))
        (tmp / "b").mkdir()
        tx, rx, ok = link_throughput(emu, tmp / "b")
        print(f"link board->host (64 KiB)                       {tx:8.0f} B/s "
              f"({tx / NOMINAL_BPS:.1%} of {NOMINAL_BPS:.0f})")
        print(f"link host->board (64 KiB)                       {rx:8.0f} B/s "
              f"({rx / NOMINAL_BPS:.1%} of {NOMINAL_BPS:.0f}; all bytes arrived: {ok})")
        for kind in ("text", "binary"):
            kbps, secs, same = fs_cp(emu, tmp, kind)
            print(f"mpremote fs cp 50 KB {kind:<6}                      {kbps:8.2f} KB/s "
                  f"({secs:.1f} s; {kbps / FACTS_FSCP_KBPS[kind]:.2f}x FACTS' "
                  f"{FACTS_FSCP_KBPS[kind]} KB/s; identical on flash: {same})")
        f = fleet_memory(emu, FLEET)
        pss = f["pss"]
        print(f"fleet of {f['count']} water meters: {f['up']} up in {f['start_s']:.1f} s; "
              f"VM PSS median {statistics.median(pss) / 1024:.2f} MiB, "
              f"mean {statistics.mean(pss) / 1024:.2f} MiB, total {sum(pss) / 1024:.0f} MiB; "
              f"supervisor PSS {f['sup_pss'] / 1024:.0f} MiB "
              f"({(sum(pss) + f['sup_pss']) / 1024 / f['count']:.2f} MiB per board in all)")
        print(f"fleet idle: supervisor CPU {f['sup_cpu']:.0%} of a core, sim speed "
              f"{f['speed']:.1f}x (cap 60x), load average {f['load1']:.1f}")
        print(f"fleet stop: {f['stop_together_ms']:.1f} ms a board stopped together, "
              f"{f['stop_each_ms']:.1f} ms one at a time "
              f"({f['stop_each_ms'] / f['stop_together_ms']:.1f}x)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--meter"]:
        meter_only(int(sys.argv[2]) if len(sys.argv) > 2 else 5)
    elif sys.argv[1:2] == ["--kinds"]:
        kinds_only()
    else:
        main()
