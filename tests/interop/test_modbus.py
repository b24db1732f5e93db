"""Modbus TCP interop: kiln's modbus_server read and written by an independent client (Debian
python3-pymodbus 3.0), and kiln's modbus_client polling an independent pymodbus server, which
then hangs and disappears.

  test_modbus.py KILN

One cell runs both drivers. The pymodbus client checks float32/int16/int32/uint32 encodings and
word order, scaling, coils, writes that land in tags (and come back through a loop), refused
writes (exception 02 for read-only or partial registers, 03 for out-of-range values), and — via
the kiln server — what kiln's modbus_client reads from the pymodbus server: values, the status
tag, `on_loss: safe` while the peer is down, reconnection, and that the loop keeps running."""
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

from pymodbus.client import ModbusTcpClient

from peers import KilnCell, free_port, run_kiln, tempdir, wait_port, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))


def f32(regs):
    return struct.unpack(">f", struct.pack(">HH", regs[0], regs[1]))[0]


def regs_f32(v):
    return list(struct.unpack(">HH", struct.pack(">f", v)))


def i32(regs):
    return struct.unpack(">i", struct.pack(">HH", regs[0], regs[1]))[0]


def u32(regs):
    return struct.unpack(">I", struct.pack(">HH", regs[0], regs[1]))[0]


def cell_text(server_port, peer_port):
    return f"""
cell: modbus_interop
tags:
  sp: {{type: float, min: 0, max: 100, initial: 5}}
  level: {{type: int, min: 0, max: 10, initial: 3}}
  run: {{type: bool, initial: 0}}
  out: float
  out_i: int
  ticks: int
  remote_val: {{type: float, safe: -1}}
  remote_ok: bool
  remote_cmd: float
loops:
  - name: main
    period_ms: 10
    blocks:
      - {{type: expr, out: out, expr: "sp * 2"}}
      - {{type: expr, out: out_i, expr: "level * -1000"}}
      - {{type: expr, out: ticks, expr: "ticks + 1"}}
      - {{type: expr, out: remote_cmd, expr: "sp * 10"}}
devices:
  - name: scada
    driver: modbus_server
    port: {server_port}
    map:
      - {{tag: sp, register: holding, address: 0, type: float32, writable: true}}
      - {{tag: level, register: holding, address: 2, type: int16, scale: 10, writable: true}}
      - {{tag: out, register: holding, address: 3, type: float32}}
      - {{tag: run, register: coil, address: 0, writable: true}}
      - {{tag: remote_ok, register: discrete, address: 1}}
      - {{tag: out, register: input, address: 0, type: float32}}
      - {{tag: out_i, register: input, address: 2, type: int32}}
      - {{tag: ticks, register: input, address: 4, type: uint32}}
      - {{tag: remote_val, register: input, address: 10, type: float32}}
  - name: plc
    driver: modbus_client
    host: 127.0.0.1
    port: {peer_port}
    period_ms: 50
    timeout_ms: 300
    backoff_ms: [100, 800]
    status: remote_ok
    on_loss: safe
    map:
      - {{tag: remote_val, register: holding, address: 0, type: float32}}
      - {{tag: remote_cmd, register: holding, address: 2, type: uint16, writable: true}}
"""


class HangingPeer:
    """Accepts connections and never answers: a Modbus device that hangs."""

    def __init__(self, port):
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # The port was the pymodbus server's a moment ago; kiln's reconnect attempts may hold it
        # briefly, so try for a while.
        def bound():
            try:
                self.s.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False
        wait_until(bound, 10, "port %d to be free for the hanging peer" % port)
        self.s.listen(8)
        self.conns = []
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        self.s.settimeout(0.1)
        while not self.stop:
            try:
                c, _ = self.s.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.t.join()
        for c in self.conns:
            c.close()
        self.s.close()


def start_peer(port, value):
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "modbus_peer.py"), str(port), str(value)])
    wait_port(port)
    return p


def main():
    kiln = os.path.abspath(sys.argv[1])
    with tempdir() as work:
        server_port, peer_port = free_port(), free_port()
        peer = start_peer(peer_port, 42.5)
        cell = KilnCell(kiln, work, cell_text(server_port, peer_port))
        c = None
        try:
            wait_port(server_port)
            c = ModbusTcpClient("127.0.0.1", port=server_port, timeout=3)
            assert c.connect()

            def hr(addr, n):
                r = c.read_holding_registers(addr, n, slave=1)
                assert not r.isError(), r
                return r.registers

            def ir(addr, n):
                r = c.read_input_registers(addr, n, slave=1)
                assert not r.isError(), r
                return r.registers

            # Reads: initial values and what the loop computed from them.
            assert f32(hr(0, 2)) == 5.0
            assert struct.unpack(">h", struct.pack(">H", hr(2, 1)[0]))[0] == 30  # level 3, scale 10
            wait_until(lambda: f32(ir(0, 2)) == 10.0, 10, "out = sp * 2 = 10")
            assert i32(ir(2, 2)) == -3000
            assert c.read_coils(0, 1, slave=1).bits[0] is False
            print("reads ok")

            # Writes land in tags and come back through the loop.
            assert not c.write_registers(0, regs_f32(7.25), slave=1).isError()
            wait_until(lambda: f32(ir(0, 2)) == 14.5, 10, "out = 14.5 after writing sp = 7.25")
            assert not c.write_register(2, 70, slave=1).isError()  # level = 7
            wait_until(lambda: i32(ir(2, 2)) == -7000, 10, "out_i = -7000 after writing level = 7")
            assert not c.write_coil(0, True, slave=1).isError()
            assert c.read_coils(0, 1, slave=1).bits[0] is True
            print("writes ok")

            # Refused writes: exception 03 out of range, 02 read-only, partial float, unmapped.
            r = c.write_registers(0, regs_f32(500.0), slave=1)
            assert r.isError() and r.exception_code == 3, r
            r = c.write_register(2, 75, slave=1)  # 7.5 into an int tag
            assert r.isError() and r.exception_code == 3, r
            r = c.write_registers(3, regs_f32(1.0), slave=1)
            assert r.isError() and r.exception_code == 2, r
            r = c.write_register(0, 0x4000, slave=1)  # half of sp's float32
            assert r.isError() and r.exception_code == 2, r
            r = c.write_register(60, 1, slave=1)
            assert r.isError() and r.exception_code == 2, r
            r = c.read_holding_registers(100, 2, slave=1)
            assert r.isError() and r.exception_code == 2, r
            assert f32(hr(0, 2)) == 7.25, "a refused write changed sp"
            print("refused writes ok")

            # kiln's modbus_client: the peer's float arrives, and sp * 10 goes back to the peer.
            wait_until(lambda: f32(ir(10, 2)) == 42.5, 10, "remote_val = 42.5 from the pymodbus server")
            assert c.read_discrete_inputs(1, 1, slave=1).bits[0] is True
            pc = ModbusTcpClient("127.0.0.1", port=peer_port, timeout=3)
            assert pc.connect()
            wait_until(lambda: pc.read_holding_registers(2, 1, slave=1).registers[0] == 72, 10, "remote_cmd = 72 on the peer")
            pc.close()
            print("modbus_client ok")

            # The peer disappears: status 0, remote_val at its safe value, the loop runs on.
            peer.terminate()
            peer.wait(timeout=10)
            peer = None
            wait_until(lambda: c.read_discrete_inputs(1, 1, slave=1).bits[0] is False, 10, "remote_ok = 0 with the peer gone")
            assert f32(ir(10, 2)) == -1.0
            t0 = u32(ir(4, 2))
            wait_until(lambda: u32(ir(4, 2)) > t0, 10, "the loop to keep counting with the peer gone")
            # It comes back with another value: kiln reconnects.
            peer = start_peer(peer_port, 43.5)
            wait_until(lambda: f32(ir(10, 2)) == 43.5, 20, "remote_val = 43.5 after the peer came back")
            assert c.read_discrete_inputs(1, 1, slave=1).bits[0] is True
            print("peer down and back ok")

            # The peer hangs (accepts, never answers): timeouts, status 0, loop unaffected.
            peer.terminate()
            peer.wait(timeout=10)
            peer = None
            hang = HangingPeer(peer_port)
            try:
                # kiln connects, its request times out, it backs off and connects again.
                wait_until(lambda: len(hang.conns) >= 2, 20, "kiln to give up on the hanging peer and reconnect")
                wait_until(lambda: c.read_discrete_inputs(1, 1, slave=1).bits[0] is False, 15, "remote_ok = 0 with a hanging peer")
                t0 = u32(ir(4, 2))
                wait_until(lambda: u32(ir(4, 2)) > t0, 10, "the loop to keep counting with a hanging peer")
                assert cell.alive()
            finally:
                hang.close()
            print("hanging peer ok")
        finally:
            if c is not None:
                c.close()
            code = cell.stop()
            if peer is not None:
                peer.terminate()
                peer.wait(timeout=10)
        out = cell.output()
        assert code == 0, out
        with open(cell.stats) as f:
            stats = json.load(f)
        kinds = [e["kind"] for e in stats["events"]]
        for e in stats["events"]:
            print("  event %8.1f ms %-14s %s" % (e["t_ms"], e["kind"], e["detail"]))
        assert kinds.count("connected") >= 2 and "disconnected" in kinds, kinds
        assert any("rejected with exception 03" in e["detail"] for e in stats["events"]), stats["events"]
        assert any(e["kind"] == "disconnected" and "timed out" in e["detail"] for e in stats["events"]), stats["events"]
        loop = stats["loops"][0]
        print("events ok; loop 'main' ran %d cycles, %d overruns" % (loop["cycles"], loop["overruns"]))

        # A port in use: `kiln cell check` reports it located, exit 2; `kiln cell run` refuses.
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        busy = blocker.getsockname()[1]
        path = os.path.join(work, "busy.yaml")
        with open(path, "w") as f:
            f.write(cell_text(busy, peer_port))
        r = run_kiln(kiln, "cell", "check", path)
        assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
        assert "busy.yaml:24:11: port %d on 127.0.0.1 is in use" % busy in r.stderr, r.stderr
        r = run_kiln(kiln, "cell", "run", path, "--duration", "1", "--no-rt", "--quiet")
        assert r.returncode != 0 and "in use" in r.stderr, (r.returncode, r.stderr)
        blocker.close()
        print("port in use ok")
    print("modbus interop: all checks passed")


if __name__ == "__main__":
    main()
