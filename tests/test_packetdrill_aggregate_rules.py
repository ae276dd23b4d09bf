"""The runner's TSO-style aggregation (an outbound script line with more
payload than one live segment takes the segments that follow) takes only data
that continues the data before it, as packetdrill checks each fragment
against the one before (run_packet.c, verify_packet_fragments): a pure ACK
is no part of a burst, so a script line can neither swallow it nor start an
aggregate with it; the line fails instead, and a segment the script left out
is reported rather than passed over.
"""

from __future__ import annotations

import os

from tcpio.packetdrill import run_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "packetdrill")
SCRIPT = os.path.join(HERE, "quickack-then-reply.pkt")
ACK_LINE = "   +0 > . 1:1(0) ack 11\n"


def _without_the_ack(tmp_path) -> str:
    with open(SCRIPT) as f:
        text = f.read()
    assert ACK_LINE in text
    path = tmp_path / "no-ack.pkt"
    path.write_text(text.replace(ACK_LINE, ""))
    return str(path)


def test_the_script_with_the_ack_passes() -> None:
    res = run_file(SCRIPT)
    assert res.status == "pass", res.report()


def test_a_pure_ack_left_out_of_the_script_is_not_merged_into_the_reply(tmp_path) -> None:
    res = run_file(_without_the_ack(tmp_path))
    assert res.status == "fail"
    assert "expected 2000 bytes vs actual 0 bytes" in res.message


def test_a_burst_still_aggregates(tmp_path) -> None:
    """The reply's two segments are one line (and with --strict_segments not)."""
    with open(SCRIPT) as f:
        text = f.read()
    path = tmp_path / "strict.pkt"
    path.write_text("--strict_segments\n" + text)
    res = run_file(str(path))
    assert res.status == "fail" and "expected 2000 bytes vs actual 1000 bytes" in res.message
