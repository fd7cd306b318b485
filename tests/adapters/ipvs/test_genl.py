"""Generic netlink framing (adapters/ipvs/genl.py) on bytes: no kernel needed.

The framing talks to the kernel in tests/adapters/ipvs/test_netlink.py and
tests/cluster/test_sync_daemon.py (inside the IPVS guest).
"""

from __future__ import annotations

import errno
import struct

from lvscheck.adapters.ipvs.genl import GENLHDR, NLMSGHDR, attrs, error_code, messages, nla


def test_attributes_are_padded_and_read_back_nested() -> None:
    inner = nla(1, struct.pack("=I", 2)) + nla(2, b"eth0\0")
    outer = nla(3 | 0x8000, inner)  # NLA_F_NESTED
    assert len(nla(2, b"eth0\0")) == 12  # 4 header + 5 payload, padded to 4
    assert len(outer) % 4 == 0
    top = attrs(GENLHDR.pack(11, 1, 0) + outer, GENLHDR.size)
    assert list(top) == [3]  # the nested flag is masked
    assert attrs(top[3]) == {1: struct.pack("=I", 2), 2: b"eth0\0"}


def test_a_datagram_of_several_messages_is_split_by_their_lengths() -> None:
    def message(mtype: int, seq: int, payload: bytes) -> bytes:
        raw = NLMSGHDR.pack(NLMSGHDR.size + len(payload), mtype, 0, seq, 0) + payload
        return raw + b"\0" * (-len(raw) % 4)

    ack = struct.pack("=i", 0)
    refused = struct.pack("=i", -errno.EEXIST)
    data = message(16, 7, b"abc") + message(2, 8, ack) + message(2, 9, refused)
    got = list(messages(data))
    assert [(t, s) for t, s, _ in got] == [(16, 7), (2, 8), (2, 9)]
    assert got[0][2] == b"abc"
    assert (error_code(got[1][2]), error_code(got[2][2])) == (0, errno.EEXIST)
    assert list(messages(data[:10])) == []  # a truncated header is not a message
