"""Line-for-line port of write_order.pl (see there); run by
tests/test_handle_write_order.py beside the Perl original.

usage: python write_order.py PORT SCENARIO
"""
import socket
import sys

from anyevent import AE
from anyevent.handle import Handle
from anyevent.socket import tcp_connect

port, scenario_name = int(sys.argv[1]), sys.argv[2]
done = AE.cv()


def bye_shutdown(hdl):
    hdl.push_write(b"bye\n")
    hdl.fh.shutdown(socket.SHUT_WR)


def header_syswrite(hdl):
    hdl.push_write(b"HEADER\n")
    hdl.fh.send(b"BODY\n")
    hdl.fh.shutdown(socket.SHUT_WR)


def drain_order(hdl):
    hdl.on_drain(lambda h: print("on_drain"))
    print("pushing")
    hdl.push_write(b"data\n")
    print("pushed")
    hdl.on_drain(None)
    hdl.fh.shutdown(socket.SHUT_WR)


scenario = {"bye_shutdown": bye_shutdown, "header_syswrite": header_syswrite,
            "drain_order": drain_order}


def connected(fh=None, *rest):
    if fh is None:
        sys.exit("connect failed")

    def on_error(h, fatal, message):
        print("error", message)
        hdl.destroy()
        done.send()

    def on_eof(h):
        print("eof")
        hdl.destroy()
        done.send()
    hdl = Handle(fh=fh, on_error=on_error, on_eof=on_eof)

    def on_line(h, line, eol):
        print("line", line.decode())
        scenario[scenario_name](h)
        print("returned")
        h.on_read(lambda h: None)  # keep reading, to see the EOF
    hdl.push_read("line", on_line)


guard = tcp_connect("127.0.0.1", port, connected)
done.recv()
