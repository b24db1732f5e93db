"""Bad driver configuration: `kiln cell check` names the file, line and column of each mistake in
a Modbus or Sparkplug mapping and exits with code 2 (no peer needed).

  test_driver_errors.py KILN"""
import os
import sys

from peers import free_port, run_kiln, tempdir

HEAD = """cell: bad
tags:
  a: float
  b: float
  c: bool
loops:
  - {name: l, period_ms: 10}
devices:
"""

# (device text, expected "line:column: message start")
CASES = [
    ("""  - name: srv
    driver: modbus_server
    port: {port}
    map:
      - {{tag: a, register: holdings, address: 0}}
""", "13:28: unknown register type 'holdings'"),
    ("""  - name: srv
    driver: modbus_server
    port: {port}
    map:
      - {{tag: a, register: input, address: 0, type: float32}}
      - {{tag: b, register: input, address: 1}}
""", "14:9: input 1..1 (tag 'b') overlaps input 0..1 (tag 'a'"),
    ("""  - name: srv
    driver: modbus_server
    port: {port}
    map:
      - {{tag: a, register: holding, address: 0, type: float64}}
""", "13:55: unknown value type 'float64'"),
    ("""  - name: srv
    driver: modbus_server
    port: {port}
    map:
      tag: a
""", "13:7: 'map' must be a list"),
    ("""  - name: srv
    driver: modbus_server
    port: {port}
    map:
      - {{tag: a, register: holding, address: 0, writable: yes please}}
""", "13:59: 'writable' must be true or false"),
    ("""  - name: plc
    driver: modbus_client
    host: plc.does-not-exist.invalid
    map:
      - {{tag: a, register: holding, address: 0}}
""", "11:11: host 'plc.does-not-exist.invalid' has no IPv4 address"),
    ("""  - name: spb
    driver: mqtt_sparkplug
    host: broker.does-not-exist.invalid
    group: g
    node: n
    metrics: [a]
""", "11:11: broker host 'broker.does-not-exist.invalid' does not resolve"),
    ("""  - name: spb
    driver: mqtt_sparkplug
    group: g
    node: n
    metrics:
      - {{tag: a, datatype: decimal}}
""", "14:28: unknown datatype 'decimal'"),
    ("""  - name: spb
    driver: mqtt_sparkplug
    group: g
    node: n
    metrics: [a, {{tag: b, deadbnd: 1}}]
""", "13:"),
]


def main():
    kiln = os.path.abspath(sys.argv[1])
    with tempdir() as work:
        for i, (dev, want) in enumerate(CASES):
            path = os.path.join(work, "bad%d.yaml" % i)
            with open(path, "w") as f:
                f.write(HEAD + dev.format(port=free_port()))
            r = run_kiln(kiln, "cell", "check", path)
            assert r.returncode == 2, (i, r.returncode, r.stdout, r.stderr)
            assert "%s:%s" % (path, want) in r.stderr, (i, want, r.stderr)
            assert "Traceback" not in r.stderr and "terminate" not in r.stderr
            print("ok:", r.stderr.splitlines()[0].replace(work + "/", ""))
        # Malformed YAML inside a device mapping.
        path = os.path.join(work, "broken.yaml")
        with open(path, "w") as f:
            f.write(HEAD + "  - name: srv\n    driver: modbus_server\n    port: 1\n    map:\n      - {tag: a, register: [holding\n")
        r = run_kiln(kiln, "cell", "check", path)
        assert r.returncode == 2 and path + ":" in r.stderr, (r.returncode, r.stderr)
        print("ok:", r.stderr.splitlines()[0].replace(work + "/", ""))
    print("driver configuration errors: all located, exit 2")


if __name__ == "__main__":
    main()
