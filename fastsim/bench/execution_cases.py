"""Execution cases (SPEC section 7): each option's replay rate against the simple timeline's, in
one run.

Every case replays the eviction cases' workload (:mod:`fastsim.bench.eviction_cases`: the top-k
strategy, k = 32, on a generated ``mixtral-8x7b`` trace at batch 4, 96 slots, ``lru``, on an
``h100-pcie``) twice, alternating: through the execution timeline with one option set, and
through SPEC section 3's core with every option at its default. The ratio is the option's rate
over the simple timeline's (its time over the option's), trace tokens per second; a prefill
replay has fewer, larger steps, so tokens (the same trace) are what both replays share.

``execution-host-tier`` gives the GPU a pinned host memory of half the model's expert bytes over
NVMe (``host_bytes``, ``nvme_bytes_per_s`` of a PCIe 4.0 x4 drive, 7 GB/s); ``execution-prefill``
marks the first 64 tokens of each sequence as its prompt.
"""
from __future__ import annotations

import numpy as np

from .eviction_cases import POLICY_BATCH, POLICY_HARDWARE, POLICY_SLOTS, POLICY_TRACE, _policy_trace
from .registry import register_case
from .timing import alternating_medians, rates
from ..profiles import hardware_profile, model_profile
from ..replay import kernel_inputs, resolve_config
from ..replay_execution import execution_inputs
from ..timeline.options import execution_options

__all__ = ["CASES", "PROMPT_TOKENS", "NVME_BYTES_PER_S"]

PROMPT_TOKENS = 64
NVME_BYTES_PER_S = 7e9
#: case name -> (what it sets, replay options); ``host`` marks the memory-tier case.
CASES = {
    "layered": ("timeline='layered'", {"timeline": "layered"}),
    "demand-first": ("link='demand-first'", {"link": "demand-first"}),
    "inflight-cap": ("max_inflight_prefetches=4", {"max_inflight_prefetches": 4}),
    "cpu": ("miss_execution='cpu'", {"miss_execution": "cpu"}),
    "zero-copy": ("miss_execution='zero-copy'", {"miss_execution": "zero-copy"}),
    "upload-cap": ("miss_execution='cpu', max_uploads_per_layer=2", {"miss_execution": "cpu", "max_uploads_per_layer": 2}),
    "exceed": ("overflow='exceed'", {"overflow": "exceed"}),
    "host-tier": ("host_bytes = half the expert bytes, NVMe at 7 GB/s", {}),
    "prefill": (f"prefill=True, {PROMPT_TOKENS}-token prompts", {"prefill": True}),
}


def _host_hardware():
    h = hardware_profile(POLICY_HARDWARE).as_dict()
    m = model_profile(POLICY_TRACE)
    h.update(name=f"{POLICY_HARDWARE}-host-tier", host_bytes=m.num_layers * m.num_experts * m.expert_bytes // 2,
             nvme_bytes_per_s=NVME_BYTES_PER_S)
    return h


def _prompted(trace):
    """The trace with each sequence's first :data:`PROMPT_TOKENS` tokens marked as its prompt."""
    import fastsim

    prompts = np.minimum(trace.sequence_lengths, PROMPT_TOKENS)
    return fastsim.Trace.from_arrays(trace.experts, trace.num_experts, trace.sequence_lengths, scores=trace.scores,
                                     model=trace.model, source=trace.source, prompt_tokens=prompts)


def _calls(trace, name: str):
    """``(option call, simple call)``: the kernels of one case, arguments prepared."""
    _, opts = CASES[name]
    hardware = _host_hardware() if name == "host-tier" else POLICY_HARDWARE
    cfg, sched = resolve_config(trace, "top-k", trace.model, hardware, cache_slots=POLICY_SLOTS, eviction="lru",
                                batch_size=POLICY_BATCH, execution=execution_options(**opts))
    entry, args, _ = execution_inputs(cfg, sched, trace, False, False)
    base_cfg, base_sched = resolve_config(trace, "top-k", trace.model, POLICY_HARDWARE, cache_slots=POLICY_SLOTS,
                                          eviction="lru", batch_size=POLICY_BATCH)
    base_entry, base_args = kernel_inputs(base_cfg, base_sched, trace.top_k)
    return (lambda: entry(*args)), (lambda: base_entry(*base_args))


def _case(ctx, name: str) -> dict:
    trace = _policy_trace(ctx)
    if name == "prefill":
        trace = _prompted(trace)
    call, base = _calls(trace, name)
    o_s, b_s, _, _ = alternating_medians(call, base, ctx.repeat, ctx.log, f"execution-{name}")
    tokens = trace.num_tokens
    return {
        **rates(tokens, o_s, b_s, "fastsim simple timeline (section 3's core, same strategy, trace and cache)",
                "tokens/s"),
        "tokens": tokens,
        "option": CASES[name][0],
        "cache_slots": POLICY_SLOTS,
        "batch_size": POLICY_BATCH,
    }


def _register(name: str) -> None:
    @register_case(
        f"execution-{name}",
        f"top-k on a generated {POLICY_TRACE} trace, batch {POLICY_BATCH}, {POLICY_SLOTS} slots: "
        f"{CASES[name][0]} vs the simple timeline",
        target="ratio >= 0.5",
    )
    def case(ctx) -> dict:
        return _case(ctx, name)


for _name in CASES:
    _register(_name)
