"""The store's $SYS topics: its type, commits and backlog (docs/persistence.md)."""
from . import helpers as h


def _sys(b, done) -> dict[str, bytes]:
    """The latest value of each $SYS/broker/store/ topic, once `done(values)` holds (updates come every
    [sys] interval; h.receive fails the test if none comes in time)."""
    c = h.connect(b, "sys-watch")
    assert h.subscribe(c, "$SYS/broker/store/#", 0) == [0]
    got: dict[str, bytes] = {}
    while not done(got):
        p = h.receive(c)
        got[p.fields["topic"]] = p.fields["payload"]
    return got


def test_sqlite_store_reports_commits(petrel):
    """With the SQLite store, $SYS says so, counts commits (a persistent session and a retained message
    make at least one) and reports a backlog that is a number."""
    b = petrel.start("[sys]\ninterval = 1\n")
    s = h.connect(b, "sys-persistent", expiry=300)
    assert h.subscribe(s, "sys/t", 1) == [1]
    p = h.connect(b, "sys-pub")
    assert h.publish(p, "sys/r", b"kept", qos=1, packet_id=1, retain=True) == 0x10
    got = _sys(b, lambda g: int(g.get("$SYS/broker/store/commits", b"0")) >= 1
               and "$SYS/broker/store/backlog" in g and "$SYS/broker/store/type" in g)
    assert got["$SYS/broker/store/type"] == b"sqlite"
    assert int(got["$SYS/broker/store/backlog"]) >= 0


def test_memory_store_says_so(petrel):
    b = petrel.start('[sys]\ninterval = 1\n[store]\ntype = "memory"\n')
    got = _sys(b, lambda g: "$SYS/broker/store/type" in g)
    assert got["$SYS/broker/store/type"] == b"memory"
