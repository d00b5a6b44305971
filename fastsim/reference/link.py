"""The reference's host-to-device link and host memory tier (docs/model.md "Execution":
"Transfers and the link", "Memory tiers"), as explicit queues of transfer records.

Plain Python, slow on purpose; nothing here is shared with the kernel side.

A :class:`Transfer` is one crossing of the link: a demand load, a prefetch load or a zero-copy
read, with its issue time, earliest start (its issue time, or the end of its NVMe read) and
duration. Under ``"fifo"`` each starts when it is issued, at ``max(earliest, link_free)``. Under
``"demand-first"`` transfers wait in two queues and the link decides lazily: when it is free at
``t`` it starts the oldest pending demand transfer issued by ``t``, else the oldest pending
prefetch, at ``max(t, its earliest start)``. The replay tells the link how far to decide:
:meth:`ReferenceLink.advance` (every start at a time before ``g``) and
:meth:`ReferenceLink.wait_for` (until a given transfer has started).
"""
from __future__ import annotations

__all__ = ["FIFO", "DEMAND_FIRST", "LINKS", "Transfer", "ReferenceLink", "HostMemory"]

FIFO = "fifo"
DEMAND_FIRST = "demand-first"
LINKS = (FIFO, DEMAND_FIRST)

# Event kinds this module writes into the replay's record (kept in step with
# ``fastsim.reference.timeline``, which lists every kind).
START = "start"  # (START, transfer id, start, end): the link starts a transfer
HOST_HIT = "host-hit"  # (HOST_HIT, step, layer, key): the key was in host memory
NVME_READ = "nvme-read"  # (NVME_READ, step, layer, key, start, end): read from NVMe into host memory


class Transfer:
    """One crossing of the link. ``kind`` is ``"demand"``, ``"prefetch"`` or ``"zero-copy"``;
    ``start`` and ``end`` stay ``None`` until the link starts it."""

    __slots__ = ("id", "key", "kind", "issue", "earliest", "duration", "nbytes", "start", "end")

    def __init__(self, tid, key, kind, issue, earliest, duration, nbytes):
        self.id, self.key, self.kind = tid, key, kind
        self.issue, self.earliest, self.duration, self.nbytes = issue, earliest, duration, nbytes
        self.start = self.end = None

    @property
    def is_demand(self) -> bool:
        """Demand loads and zero-copy reads are demand transfers; prefetch loads are not."""
        return self.kind != "prefetch"

    def ended_by(self, g: int) -> bool:
        return self.end is not None and self.end <= g


class ReferenceLink:
    """The one host-to-device link: every transfer issued so far and the pending queues."""

    def __init__(self, mode: str, events: list):
        if mode not in LINKS:
            raise ValueError(f"link must be one of {', '.join(map(repr, LINKS))}, got {mode!r}")
        self.mode = mode
        self.events = events
        self.free = 0  # when the link next idles (the end of the last started transfer)
        self.transfers: list[Transfer] = []
        self.pending_demand: list[Transfer] = []  # issued, not started, in issue order
        self.pending_prefetch: list[Transfer] = []

    def issue(self, key, kind, g, earliest, duration, nbytes) -> Transfer:
        x = Transfer(len(self.transfers), key, kind, g, earliest, duration, nbytes)
        self.transfers.append(x)
        if self.mode == FIFO:  # section 3: every start is fixed at issue
            self._start(x, max(self.free, x.earliest))
        elif x.is_demand:
            self.pending_demand.append(x)
        else:
            self.pending_prefetch.append(x)
        return x

    def _start(self, x: Transfer, start: int) -> None:
        x.start, x.end = start, start + x.duration
        self.free = x.end
        for queue in (self.pending_demand, self.pending_prefetch):
            if x in queue:
                queue.remove(x)
        self.events.append((START, x.id, x.start, x.end))

    def _next_decision(self):
        """``(t, transfer)``: when the link next decides and what it starts then, or ``None``."""
        pending = self.pending_demand + self.pending_prefetch
        if not pending:
            return None
        t = max(self.free, min(x.issue for x in pending))
        for queue in (self.pending_demand, self.pending_prefetch):
            for x in queue:
                if x.issue <= t:
                    return t, x
        raise AssertionError("a pending transfer issued by the decision time exists")

    def advance(self, g: int) -> None:
        """Make every start the link decides at a time before ``g``."""
        while True:
            nxt = self._next_decision()
            if nxt is None or nxt[0] >= g:
                return
            t, x = nxt
            self._start(x, max(t, x.earliest))

    def wait_for(self, x: Transfer) -> None:
        """Make starts (no transfer is issued meanwhile) until ``x`` has started."""
        while x.start is None:
            t, y = self._next_decision()
            self._start(y, max(t, y.earliest))

    def demand_end_estimate(self, g: int, earliest: int, duration: int) -> int:
        """When a demand transfer issued now at ``g`` would end, the link as it stands: under
        fifo ``max(link_free, earliest) + duration``; under demand-first after the running
        transfer and every pending demand transfer, as the link would run them."""
        if self.mode == FIFO:
            return max(self.free, earliest) + duration
        t = max(self.free, g)
        for x in self.pending_demand:
            t = max(t, x.earliest) + x.duration
        return max(t, earliest) + duration

    def prefetches_not_ended(self, g: int) -> int:
        """Prefetch transfers queued or running at ``g`` (whether or not their key is resident)."""
        return sum(1 for x in self.transfers if x.kind == "prefetch" and not x.ended_by(g))


class HostMemory:
    """Pinned host memory as an LRU cache of experts, fed from NVMe over a second FIFO link.

    At time 0 it holds the longest prefix of keys ``0, 1, 2, ...`` whose bytes fit, recency in
    key order. :meth:`lookup` is called at a transfer's or CPU execution's issue time ``g``; it
    returns when the key's host copy is ready (its earliest start)."""

    def __init__(self, capacity: int, num_keys: int, nbytes, nvme_ns, events: list):
        self.capacity, self.nbytes, self.nvme_ns, self.events = capacity, nbytes, nvme_ns, events
        largest = max((nbytes(k) for k in range(num_keys)), default=0)
        if capacity < largest:
            raise ValueError(f"host_bytes {capacity} is below one expert's {largest} bytes")
        self.ready: dict[int, int] = {}  # key -> when its host copy is complete
        self.recency: dict[int, int] = {}
        self.tick = 0
        self.nvme_free = 0
        used = 0
        for k in range(num_keys):
            if used + nbytes(k) > capacity:
                break
            used += nbytes(k)
            self._touch(k, 0)

    def _touch(self, key: int, ready: int) -> None:
        self.tick += 1
        self.recency[key] = self.tick
        self.ready[key] = ready

    def used(self) -> int:
        return sum(self.nbytes(k) for k in self.ready)

    def lookup(self, key: int, g: int, s: int, l: int) -> int:
        if key in self.ready:
            self.events.append((HOST_HIT, s, l, key))
            ready = max(g, self.ready[key])  # a read still under way is waited for
            self._touch(key, self.ready[key])
            return ready
        start = max(g, self.nvme_free)
        end = start + self.nvme_ns(key)
        self.nvme_free = end
        self.events.append((NVME_READ, s, l, key, start, end))
        while self.used() + self.nbytes(key) > self.capacity:
            victim = min(self.recency, key=lambda k: (self.recency[k], k))
            del self.recency[victim], self.ready[victim]
        self._touch(key, end)
        return end
