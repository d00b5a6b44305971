"""The reference's execution options (SPEC section 7, docs/model.md "Execution") on tiny cases
worked out by hand, one or more per option.

Unless a case says otherwise: batch 1, LRU, a global cache, 1000-byte experts over a 10 GB/s
link with no latency (``load = 100`` ns), ``expert(n) = 10 n`` (10 flops a token at 1e9 flop/s,
weights read at 1e18 B/s), ``dense(b) = 5 b``. Keys are ``layer * E + expert``; outcomes are 0
hit, 1 late, 2 miss in schedule order; ``[a, b)`` is a transfer's start and end in ns.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastsim
from fastsim.reference import replay_reference
from fastsim.reference.execution import replay_execution_reference

GPU = dict(
    name="test-gpu", h2d_bytes_per_s=1e10, transfer_latency_s=0.0, mem_bytes_per_s=1e18,
    flops_per_s=1e9, memory_bytes=10**15, launch_s=0.0,
)
# cpu(n) = 30 + max(1000 B / 1e11 B/s = 10, n x 10 flops / 1e9 flop/s = 10 n): cpu(1) = 40 ns
CPU_GPU = dict(GPU, cpu_flops_per_s=1e9, cpu_mem_bytes_per_s=1e11, cpu_overhead_s=30e-9)


def model(L, E, K=1, **over):
    d = dict(
        name="test-model", num_layers=L, num_experts=E, top_k=K, expert_bytes=1000,
        dense_bytes_per_layer=0, expert_flops_per_token=10.0, dense_flops_per_token=5.0,
    )
    d.update(over)
    return d


def trace(rows, E, lengths=None, prompts=None):
    """``rows[t][l]`` = the expert of token ``t`` at layer ``l`` (top-1), or a list (top-K)."""
    a = np.array([[r if isinstance(r, list) else [r] for r in row] for row in rows], np.int64)
    return fastsim.Trace.from_arrays(a, E, lengths, prompt_tokens=prompts)


def scripted(wants):
    """A strategy reference that wants ``wants[(s, l)]`` at each position."""

    class Scripted:
        def __init__(self, L, E, K, schedule):
            pass

        def observe(self, s, l, R, n):
            return list(wants.get((s, l), []))

    return Scripted


def run(tr, strategy="on-demand", gpu=GPU, mprof=None, **kw):
    kw.setdefault("record", True)
    kw.setdefault("per_step", True)
    L, E = tr.num_layers, tr.num_experts
    return replay_execution_reference(tr, strategy, model=mprof or model(L, E, tr.top_k), hardware=gpu, **kw)


def ns(seconds):
    return [round(x * 1e9) for x in seconds]


def starts(r):
    """``{transfer id: (start, end)}`` from the record's START events."""
    return {e[1]: (e[2], e[3]) for e in r.events if e[0] == "start"}


def evictions(r):
    return [e[3] for e in r.events if e[0] == "evict"]


# --- the link ---------------------------------------------------------------------------------

def test_demand_first_lets_a_demand_overtake_queued_prefetches():
    # tokens [0], [3]; C = 4; the strategy wants [1, 2] at step 0. Transfers: 0 = key 0 (demand),
    # 1 = key 1, 2 = key 2 (prefetches), 3 = key 3 (demand).
    # fifo: s0 (g = 0): 0 [0, 100), 1 [100, 200), 2 [200, 300); end 100 + 5 + 10 = 115.
    #   s1 (g = 115): 3 queues behind the prefetches: [300, 400); end 415. Stall 100 + 285.
    # demand-first: s0: the compute waits for key 0: the link starts it at 0, [0, 100); end 115.
    #   s1 (g = 115): before the demand the link starts what it decides before 115: at 100 it
    #   has only prefetches, so 1 [100, 200). Key 3 is issued at 115; when the link frees at
    #   200 it takes the demand first: 3 [200, 300), ahead of prefetch 2; end 315. Stall 100 +
    #   185. Prefetch 2 never starts before the end; it still counts as a (wasted) load.
    tr = trace([[0], [3]], 4)
    want = scripted({(0, 0): [1, 2]})
    fifo = run(tr, want, cache_slots=4)
    df = run(tr, want, cache_slots=4, link="demand-first")
    assert starts(fifo) == {0: (0, 100), 1: (100, 200), 2: (200, 300), 3: (300, 400)}
    assert starts(df) == {0: (0, 100), 1: (100, 200), 3: (200, 300)}
    assert ns(fifo.step_time_s) == [115, 300] and ns(fifo.step_stall_s) == [100, 285]
    assert ns(df.step_time_s) == [115, 200] and ns(df.step_stall_s) == [100, 185]
    assert df.metrics["total_time_s"] == 315e-9 and fifo.metrics["total_time_s"] == 415e-9
    for r in (fifo, df):
        assert r.outcomes.tolist() == [2, 2]
        assert (r.metrics["prefetch_loads"], r.metrics["prefetch_wasted"], r.metrics["h2d_bytes"]) == (2, 2, 4000)
    assert df.config["link"] == "demand-first"


def test_demand_first_link_freeing_at_g_sees_that_g_s_demand():
    # As above with dense(1) = 90 (90 flops a token): s0 ends at 100 + 90 + 10 = 200, when
    # prefetch 1 ([100, 200)) ends. s1 (g = 200): the link's decision at 200 comes after the
    # demand issued at 200 is queued: 3 [200, 300) before prefetch 2; end 300 + 100 = 400.
    tr = trace([[0], [3]], 4)
    r = run(tr, scripted({(0, 0): [1, 2]}), mprof=model(1, 4, dense_flops_per_token=90.0), cache_slots=4,
            link="demand-first")
    assert starts(r) == {0: (0, 100), 1: (100, 200), 3: (200, 300)}
    assert r.metrics["total_time_s"] == 400e-9


def test_demand_first_queued_prefetch_is_late():
    # tokens [0], [3]; C = 3; the strategy wants [2, 3] at s0. demand-first.
    # s0 (g = 0): 0 [0, 100); 2 and 3 queue; end 115.
    # s1 (g = 115): the link started 2 when it freed at 100 ([100, 200)); 3 is queued, not
    #   started: resident and in flight, a late access. The compute waits for it: the link starts
    #   it when it frees at 200, [200, 300); end 300 + 15 = 315, stall 185.
    tr = trace([[0], [3]], 4)
    r = run(tr, scripted({(0, 0): [2, 3]}), cache_slots=3, link="demand-first")
    assert r.outcomes.tolist() == [2, 1]
    assert starts(r) == {0: (0, 100), 1: (100, 200), 2: (200, 300)}
    assert (r.metrics["prefetch_useful"], r.metrics["prefetch_wasted"], r.metrics["late"]) == (1, 1, 1)
    assert ns(r.step_stall_s) == [100, 185]


def test_inflight_cap_stops_a_call():
    # tokens [0], [3], [3]; C = 4; the strategy wants [1, 2] at s0, [2] at s1 and s2.
    # max_inflight_prefetches = 1:
    #   s0 (g = 0): 0 [0, 100). 1: no prefetch in flight, loads [100, 200). 2: key 1's transfer
    #   has not ended at 0: one in flight, the cap: the call stops. End 115.
    #   s1 (g = 115): 3 [200, 300). Wanted 2: key 1 still in flight (ends 200 > 115): stop.
    #   End 300 + 15 = 315.
    #   s2 (g = 315): 3 hits. Wanted 2: key 1 ended at 200: none in flight, 2 loads [315, 415).
    #   End 330.
    # Without the cap: s0 loads 1 [100, 200) and 2 [200, 300); s1: 3 [300, 400), end 415; 2 is
    # resident at s1 and s2; s2 ends 430.
    tr = trace([[0], [3], [3]], 4)
    want = scripted({(0, 0): [1, 2], (1, 0): [2], (2, 0): [2]})
    capped = run(tr, want, cache_slots=4, max_inflight_prefetches=1)
    free = run(tr, want, cache_slots=4)
    assert starts(capped) == {0: (0, 100), 1: (100, 200), 2: (200, 300), 3: (315, 415)}
    assert [e[3] for e in capped.events if e[0] == "load" and e[4] == "prefetch"] == [1, 2]
    assert ns(capped.step_time_s) == [115, 200, 15] and capped.metrics["total_time_s"] == 330e-9
    assert capped.outcomes.tolist() == [2, 2, 0] and capped.metrics["prefetch_loads"] == 2
    assert free.metrics["total_time_s"] == 430e-9 and free.metrics["prefetch_loads"] == 2
    assert capped.config["max_inflight_prefetches"] == 1 and free.config["max_inflight_prefetches"] == -1


# --- layer anatomy ----------------------------------------------------------------------------

def test_layered_orders_experts_by_readiness_and_sums_the_gaps():
    # top-3, tokens [3, -, -], [0, 1, 3]; C = 4; the strategy wants [1] at s0.
    # layered, s0: attention and router over [0, 5): g = 5. 3 misses [5, 105); prefetch 1
    #   [105, 205). Expert 3 from 105 to 115. Stall (115 - 0) - (5 + 10) = 100.
    # s1: attention [115, 120), g = 120. 0 misses, behind the prefetch: [205, 305); 1 is late
    #   (ready 205); 3 hits. By readiness (max(ready, g), id): 3 (120), 1 (205), 0 (305).
    #   3 runs [120, 130), 1 [205, 215), 0 [305, 315). Stall = the gaps 75 + 90 = 165
    #   = (315 - 115) - (5 + 3 x 10).
    # simple for contrast: s0: 3 [0, 100), 1 [100, 200), end 115. s1 (g = 115): 0 [200, 300);
    #   the layer waits for all: end 300 + 5 + 30 = 335, stall 185.
    tr = trace([[[3, -1, -1]], [[0, 1, 3]]], 4)
    want = scripted({(0, 0): [1]})
    lay = run(tr, want, cache_slots=4, timeline="layered")
    simple = run(tr, want, cache_slots=4)
    assert lay.outcomes.tolist() == [2, 2, 1, 0] and simple.outcomes.tolist() == [2, 2, 1, 0]
    assert starts(lay) == {0: (5, 105), 1: (105, 205), 2: (205, 305)}
    assert ns(lay.step_time_s) == [115, 200] and ns(lay.step_stall_s) == [100, 165]
    assert lay.metrics["total_time_s"] == 315e-9 and lay.metrics["stall_s"] == 265e-9
    assert ns(simple.step_time_s) == [115, 220] and ns(simple.step_stall_s) == [100, 185]
    assert simple.metrics["total_time_s"] == 335e-9
    layers = [e for e in lay.events if e[0] == "layer"]
    assert layers == [("layer", 0, 0, 0, 5, 115, 15), ("layer", 1, 0, 115, 120, 315, 35)]


# --- where a miss runs ------------------------------------------------------------------------

def test_cpu_execution_chosen_and_refused():
    # top-3, tokens [0, 1, 2], [2, 3, -]; C = 4; cpu(1) = 40.
    # s0 (g = 0): 0 misses: CPU end 40 < transfer end 100: CPU [0, 40). 1: CPU end 80 < 100: CPU
    #   [40, 80). 2: CPU end 120 > 100: uploaded [0, 100). The GPU waits for 2: 100 + 5 + 10 =
    #   115; the CPU is done at 80: end 115, stall 100.
    # s1 (g = 115): 2 hits. 3: CPU end 155 < 115 + 100: CPU [115, 155). GPU: 2 from 115,
    #   115 + 5 + 10 = 130; the layer ends with the CPU at 155: stall 155 - 115 - 15 = 25.
    tr = trace([[[0, 1, 2]], [[2, 3, -1]]], 4)
    r = run(tr, gpu=CPU_GPU, cache_slots=4, miss_execution="cpu")
    assert [e[3:] for e in r.events if e[0] == "cpu"] == [(0, 0, 40), (1, 40, 80), (3, 115, 155)]
    assert r.outcomes.tolist() == [2, 2, 2, 0, 2]
    m = r.metrics
    assert (m["misses"], m["cpu_executions"], m["demand_loads"], m["zero_copy_executions"], m["h2d_bytes"]) == (4, 3, 1, 0, 1000)
    assert ns(r.step_time_s) == [115, 40] and ns(r.step_stall_s) == [100, 25]
    assert m["peak_resident"] == 1
    # max_uploads_per_layer = 0: every miss runs on the CPU whatever the comparison says:
    # s0: 0 [0, 40), 1 [40, 80), 2 [80, 120); the GPU runs only the dense part (0 to 5): end 120,
    # stall 120 - 5 = 115. s1 (g = 120): 2 misses again: CPU [120, 160), 3 [160, 200); end 200.
    capped = run(tr, gpu=CPU_GPU, cache_slots=4, miss_execution="cpu", max_uploads_per_layer=0)
    assert capped.metrics["cpu_executions"] == 5 and capped.metrics["demand_loads"] == 0
    assert ns(capped.step_time_s) == [120, 80] and ns(capped.step_stall_s) == [115, 75]


def test_cpu_compares_with_the_link_as_it_stands():
    # cpu(1) = 140 + 10 = 150; top-3, one token [0, 1, 2]; C = 4.
    # 0: CPU end 150 > transfer end 100: uploaded [0, 100). 1: the link runs 0 first, so its
    # transfer would end at 200 > 150: CPU [0, 150). 2: CPU end 300 > 200: uploaded [100, 200).
    # The same under demand-first, where 0's upload is still pending (not started) when 1 is
    # decided: the estimate runs the pending demand transfers first. End 200 + 5 + 20 = 225.
    gpu = dict(CPU_GPU, cpu_overhead_s=140e-9)
    tr = trace([[[0, 1, 2]]], 4)
    for link in ("fifo", "demand-first"):
        r = run(tr, gpu=gpu, cache_slots=4, miss_execution="cpu", link=link)
        assert [e[3:] for e in r.events if e[0] == "cpu"] == [(1, 0, 150)]
        assert starts(r) == {0: (0, 100), 1: (100, 200)} and r.metrics["total_time_s"] == 225e-9
    # a tie is no win: cpu(1) = 40 + 10 = 50; top-2 [0, 1]: 0 on the CPU [0, 50); 1's CPU end
    # 100 equals its transfer's end 100, so it is uploaded [0, 100); end 100 + 5 + 10 = 115
    tie = run(trace([[[0, 1]]], 4), gpu=dict(CPU_GPU, cpu_overhead_s=40e-9), cache_slots=4, miss_execution="cpu")
    assert [e[3:] for e in tie.events if e[0] == "cpu"] == [(0, 0, 50)] and starts(tie) == {0: (0, 100)}
    assert tie.metrics["total_time_s"] == 115e-9


def test_cpu_needs_its_figures():
    tr = trace([[0]], 4)
    with pytest.raises(ValueError, match="cpu_flops_per_s"):
        run(tr, cache_slots=4, miss_execution="cpu")
    with pytest.raises(ValueError, match="max_uploads_per_layer"):
        run(tr, cache_slots=4, max_uploads_per_layer=1)


def test_zero_copy_with_and_without_an_upload_cap():
    # latency 20 ns: load = 20 + 100 = 120; a zero-copy read is 100 (no latency). Weights read
    # at 5e10 B/s: a resident expert is memory-bound, expert(1) = max(1000 / 50 = 20, 10) = 20;
    # a zero-copy expert's weights came over the link, zc(1) = 10. top-2, tokens [0, 1], [0, 1].
    # every miss zero-copy: s0 (g = 0): 0 read [0, 100), 1 read [100, 200); the GPU waits: 200 +
    #   5 + 10 + 10 = 225. s1 (g = 225): both miss again (never resident): [225, 325),
    #   [325, 425); end 450. Stall 200 + 200.
    # max_uploads_per_layer = 1: s0: 0 uploaded [0, 120), 1 read [120, 220); end 220 + 5 + 20 +
    #   10 = 255. s1 (g = 255): 0 hits; 1 misses and is the layer's first upload: [255, 375);
    #   end 375 + 5 + 20 + 20 = 420. Stall 220 + 120.
    gpu = dict(GPU, transfer_latency_s=20e-9, mem_bytes_per_s=5e10)
    tr = trace([[[0, 1]], [[0, 1]]], 4)
    zc = run(tr, gpu=gpu, cache_slots=4, miss_execution="zero-copy")
    assert starts(zc) == {0: (0, 100), 1: (100, 200), 2: (225, 325), 3: (325, 425)}
    m = zc.metrics
    assert (m["misses"], m["zero_copy_executions"], m["demand_loads"], m["h2d_bytes"]) == (4, 4, 0, 4000)
    assert m["total_time_s"] == 450e-9 and m["stall_s"] == 400e-9 and m["peak_resident"] == 0
    up = run(tr, gpu=gpu, cache_slots=4, miss_execution="zero-copy", max_uploads_per_layer=1)
    assert starts(up) == {0: (0, 120), 1: (120, 220), 2: (255, 375)}
    m = up.metrics
    assert up.outcomes.tolist() == [2, 2, 0, 2]
    assert (m["misses"], m["zero_copy_executions"], m["demand_loads"], m["h2d_bytes"]) == (3, 1, 2, 3000)
    assert m["total_time_s"] == 420e-9 and m["stall_s"] == 340e-9


# --- overflow ---------------------------------------------------------------------------------

def test_exceed_overflow_and_peak_overflow():
    # top-3, tokens [0, 1, 2], [3, -, -]; C = 1, below the working set of 3.
    # s0 (g = 0): 0 fits [0, 100); 1 and 2 find no victim outside R and load all the same:
    #   [100, 200), [200, 300): 3 keys in 1 slot, 2 above capacity. The strategy wants [3]: a
    #   prefetch never overflows: no victim (0, 1, 2 are in R), the call stops. End 300 + 5 + 30.
    # s1 (g = 335): 3 misses: evicts 0, 1, 2 (least recent first) until it fits; [335, 435);
    #   end 450. Occupancy 3, 1.
    tr = trace([[[0, 1, 2]], [[3, -1, -1]]], 4)
    want = scripted({(0, 0): [3]})
    with pytest.raises(ValueError, match="step 0, layer 0 needs 3"):
        run(tr, want, cache_slots=1)
    r = run(tr, want, cache_slots=1, overflow="exceed")
    m = r.metrics
    assert evictions(r) == [0, 1, 2] and r.outcomes.tolist() == [2, 2, 2, 2]
    assert (m["peak_overflow"], m["peak_resident"], m["mean_resident"], m["prefetch_loads"]) == (2, 3, 2.0, 0)
    assert m["total_time_s"] == 450e-9
    # a byte budget counts the overflow in bytes: L = 2, E = 2, layer 0 experts 1000 B, layer 1
    # 2000 B, 2500 B; top-2, one token: layer 0 [0, -], layer 1 [0, 1] (keys 2, 3).
    # s0 l0: 0 [0, 100); end 115. l1 (g = 115): 2 needs room: 0 is settled and outside R:
    # evicted; 2 fits. 3 finds no victim: loads anyway, 4000 B held in 2500: 1500 B above.
    mb = run(trace([[[0, -1], [0, 1]]], 2), mprof=model(2, 2, 2, expert_bytes=[1000, 2000]), cache_bytes=2500,
             overflow="exceed")
    assert mb.config["cache_unit"] == "bytes" and evictions(mb) == [0]
    assert (mb.metrics["peak_overflow"], mb.metrics["peak_cache_bytes"]) == (1500, 4000)


# --- memory tiers -----------------------------------------------------------------------------

def test_host_tier_nvme_read_delays_a_transfer():
    # host_bytes 2000 holds keys 0 and 1 at time 0 (recency 0, then 1); NVMe at 2 GB/s: a
    # 1000-byte read takes 500 ns. tokens [0], [2], [1]; C = 4.
    # s0 (g = 0): 0 is in host memory (a host hit, now the most recent): [0, 100); end 115.
    # s1 (g = 115): 2 is not: NVMe [115, 615), host evicts its least recent, 1; the transfer
    #   waits for the read: [615, 715); end 730, stall 600.
    # s2 (g = 730): 1 was evicted from host: NVMe [730, 1230), evicting 0 (less recent than 2);
    #   [1230, 1330); end 1345.
    gpu = dict(GPU, host_bytes=2000, nvme_bytes_per_s=2e9)
    r = run(trace([[0], [2], [1]], 4), gpu=gpu, cache_slots=4)
    assert [e[3:] for e in r.events if e[0] == "nvme-read"] == [(2, 115, 615), (1, 730, 1230)]
    assert starts(r) == {0: (0, 100), 1: (615, 715), 2: (1230, 1330)}
    m = r.metrics
    assert (m["host_hits"], m["nvme_loads"], m["total_time_s"]) == (1, 2, 1345e-9)
    assert ns(r.step_stall_s) == [100, 600, 600]
    # a read on the one NVMe link: top-2 [2, 3] reads 2 over [0, 500) and 3 over [500, 1000);
    # the transfers follow: 2 [500, 600), 3 [1000, 1100); end 1100 + 5 + 20
    r2 = run(trace([[[2, 3]]], 4), gpu=gpu, cache_slots=4)
    assert starts(r2) == {0: (500, 600), 1: (1000, 1100)} and r2.metrics["total_time_s"] == 1125e-9
    with pytest.raises(ValueError, match="nvme_bytes_per_s"):
        run(trace([[0]], 4), gpu=dict(GPU, host_bytes=2000), cache_slots=4)


def test_host_copy_still_being_read_is_waited_for():
    # host_bytes 2000 (keys 0 and 1), NVMe 500 ns a key, cpu(1) = 40; one token [2]; the
    # strategy wants [2]. s0 (g = 0): 2 misses: NVMe [0, 500) (host evicts 0); its CPU end
    # 500 + 40 = 540 beats the transfer's 500 + 100: CPU [500, 540). The prefetch of 2 finds it in
    # host memory with its read under way: a host hit that waits for the read: [500, 600). The
    # GPU runs only the dense part: the layer ends with the CPU at 540, stall 540 - 5.
    gpu = dict(CPU_GPU, host_bytes=2000, nvme_bytes_per_s=2e9)
    r = run(trace([[2]], 4), scripted({(0, 0): [2]}), gpu=gpu, cache_slots=4, miss_execution="cpu")
    assert [e[3:] for e in r.events if e[0] == "cpu"] == [(2, 500, 540)] and starts(r) == {0: (500, 600)}
    m = r.metrics
    assert (m["host_hits"], m["nvme_loads"], m["prefetch_loads"], m["total_time_s"], m["stall_s"]) == (1, 1, 1, 540e-9, 535e-9)


# --- prefill ----------------------------------------------------------------------------------

def test_prefill_ttft_tpot_and_phase_split():
    # batch 2. A = [0], [1], [0] with a 2-token prompt; B = [1], [2], [3] with a 1-token prompt;
    # C = [3], [0], all prompt. C = 4 slots.
    # step 0: A's prompt (A0, A1) and B's (B0): b = 3, R = {0, 1}, n = [1, 2]; both prefill.
    #   0 [0, 100), 1 [100, 200); end 200 + 15 + 10 + 20 = 245.
    # step 1: A2 and B1 decode: b = 2, R = {0, 2}. 0 hits, 2 [245, 345); end 345 + 10 + 20 = 375.
    #   A ends.
    # step 2: slot 0 takes C, its whole prompt (C0, C1), with B2: b = 3, R = {0, 3}, n = [1, 2];
    #   0 (from C1) and 3 (from C0; B2's decode token too) are prefill accesses. 0 hits,
    #   3 [375, 475); end 475 + 15 + 10 + 20 = 520.
    # Step times 245, 130, 145. TTFT: A 245, B 245, C 145. TPOT: A2 130, B1 130, B2 145.
    tr = trace([[0], [1], [0], [1], [2], [3], [3], [0]], 4, [3, 3, 2], prompts=[2, 1, 2])
    r = run(tr, cache_slots=4, batch_size=2, prefill=True)
    assert ns(r.step_time_s) == [245, 130, 145]
    m = r.metrics
    assert (m["prefill_accesses"], m["prefill_hits"], m["prefill_late"], m["prefill_misses"]) == (4, 1, 0, 3)
    assert (m["decode_accesses"], m["decode_hits"], m["decode_late"], m["decode_misses"]) == (2, 1, 0, 1)
    assert (m["prefill_hit_rate"], m["decode_hit_rate"]) == (0.25, 0.5)
    assert (m["steps"], m["tokens"]) == (3, 8)
    assert m["ttft_s"] == (635 / 3) / 1e9 and m["ttft_p50_s"] == 245e-9 and m["ttft_p99_s"] == 245e-9
    assert m["tpot_s"] == 135e-9 and m["tpot_p50_s"] == 130e-9
    # p99 over [130, 130, 145]: rank 1.98, 145 - 15 x 0.02 = 144.7 ns, as numpy computes it
    assert m["tpot_p99_s"] == np.percentile([130, 130, 145], 99) / 1e9
    # without prefill every token is a decode token, one per step: 5 steps of 2, 2, 2, 1, 1 tokens
    plain = run(tr, cache_slots=4, batch_size=2)
    assert plain.metrics["steps"] == 5 and plain.metrics["prefill_accesses"] == 0
    assert plain.metrics["ttft_s"] == 0.0 and plain.metrics["decode_accesses"] == plain.metrics["accesses"]
    with pytest.raises(ValueError, match="prompt"):
        run(trace([[0], [1]], 4), cache_slots=4, prefill=True)


# --- cache budget -----------------------------------------------------------------------------

def test_cache_bytes_auto_arithmetic():
    # batch 2, the longest sequence 3 tokens: KV = 100 B/token x 2 x 3 = 600 B.
    # memory 1_508_100 - dense 1_000_000 - KV 600 - reserve 500_000 = 7500 B: 7 slots of 1000 B.
    mp = model(1, 4, dense_bytes_total=1_000_000, kv_bytes_per_token=100)
    tr = trace([[0], [1], [2], [3], [0]], 4, [3, 2])
    r = run(tr, mprof=mp, gpu=dict(GPU, memory_bytes=1_508_100), cache_bytes="auto", reserve_bytes=500_000, batch_size=2)
    assert r.config["cache_slots"] == 7 and r.config["cache_request"] == "auto"
    assert r.config["cache_budget"]["cache_bytes"] == 7500 and r.config["cache_budget"]["kv_bytes"] == 600
    # the default reserve, 2 GiB: 2**31 + 1_005_600 leaves 5000 B; context_tokens 10 makes the
    # KV 2000 B and leaves 3600 B: 3 slots
    g2 = dict(GPU, memory_bytes=2**31 + 1_005_600)
    assert run(tr, mprof=mp, gpu=g2, cache_bytes="auto", batch_size=2).config["cache_slots"] == 5
    assert run(tr, mprof=mp, gpu=g2, cache_bytes="auto", batch_size=2, context_tokens=10).config["cache_slots"] == 3
    with pytest.raises(ValueError, match="leaves no room"):
        run(tr, mprof=mp, gpu=dict(GPU, memory_bytes=1_000_000), cache_bytes="auto", batch_size=2)
    with pytest.raises(ValueError, match="kv_bytes_per_token"):
        run(tr, mprof=model(1, 4, dense_bytes_total=1), cache_bytes="auto")
    # 1_500_601 B leaves 1 B: no slot, below the working set of 2 (batch 2): named with the figures
    with pytest.raises(ValueError, match="working set.*1500601 B of GPU memory"):
        run(tr, mprof=mp, gpu=dict(GPU, memory_bytes=1_500_601), cache_bytes="auto", reserve_bytes=500_000, batch_size=2)
    with pytest.raises(ValueError, match="only with"):
        run(tr, cache_slots=4, reserve_bytes=0)


# --- the entry point --------------------------------------------------------------------------

def test_replay_reference_delegates_and_records_the_options():
    tr = trace([[0], [3]], 4)
    want = scripted({(0, 0): [1, 2]})
    a = replay_reference(tr, want, model=model(1, 4), hardware=GPU, cache_slots=4, link="demand-first", record=True)
    b = run(tr, want, cache_slots=4, link="demand-first")
    assert a.metrics == b.metrics and a.config["link"] == "demand-first"
    assert "cpu_executions" in a.metrics
    # all defaults: the section 3 path, whose config records the options at their defaults
    old = replay_reference(tr, want, model=model(1, 4), hardware=GPU, cache_slots=4)
    assert "cpu_executions" not in old.metrics and old.config["timeline"] == "simple"
    assert old.config["max_uploads_per_layer"] == -1
    # a hardware profile with memory tiers is an option too
    tiered = replay_reference(tr, want, model=model(1, 4), hardware=dict(GPU, host_bytes=4000, nvme_bytes_per_s=1e9),
                              cache_slots=4)
    assert tiered.metrics["host_hits"] == 4  # keys 0..3 fit in host memory: every transfer hits
