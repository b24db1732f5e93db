"""An independent Modbus TCP server (Debian python3-pymodbus 3.0) for kiln's modbus_client:
holding registers 0-1 hold the float32 VALUE (high word first), 2-9 are free for writes.

  modbus_peer.py PORT [VALUE]"""
import logging
import struct
import sys

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.server import StartTcpServer


def main():
    port = int(sys.argv[1])
    value = float(sys.argv[2]) if len(sys.argv) > 2 else 42.5
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    block = ModbusSequentialDataBlock(0, [hi, lo] + [0] * 62)
    store = ModbusSlaveContext(hr=block, ir=ModbusSequentialDataBlock(0, [0] * 64),
                               co=ModbusSequentialDataBlock(0, [0] * 64), di=ModbusSequentialDataBlock(0, [0] * 64),
                               zero_mode=True)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # it logs every closed client as an error
    StartTcpServer(context=ModbusServerContext(slaves=store, single=True), address=("127.0.0.1", port))


if __name__ == "__main__":
    main()
