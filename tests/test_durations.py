"""``fastsim.timeline.durations`` at its boundaries (SPEC sections 2-3).

``to_ns`` is ``int(seconds * 1e9 + 0.5)``: round half up, not half to even, not truncation. Each
input below was chosen so that ``seconds * 1e9`` evaluates to the float the comment names (checked
in CPython: ``2.5e-9 * 1e9 == 2.5`` exactly), so the expected value follows from the formula and
a boundary claimed here is a real one.
"""
import pytest

from fastsim.profiles import hardware_profile, model_profile
from fastsim.timeline.durations import dense_seconds, expert_seconds, load_seconds, to_ns


@pytest.mark.parametrize(
    "seconds, ns",
    [
        (0.0, 0),
        # exact halves round up, never to even: 0.5 -> 1 (even would give 0), 2.5 -> 3 (2),
        # 1.5 -> 2, 4.5 -> 5 (4)
        (5e-10, 1),
        (2.5e-9, 3),
        (1.5e-9, 2),
        (4.5e-9, 5),
        # fractions on either side of a half: 0.4 / 2.4 down, 0.6 / 2.6 up (no truncation, no ceiling)
        (4e-10, 0),
        (2.4e-9, 2),
        (6e-10, 1),
        (2.6e-9, 3),
        (1e-10, 0),
        # just below a half: 2.4999999999999996e-09 * 1e9 == 2.4999999999999996, and
        # 4.999999999999998e-10 * 1e9 == 0.49999999999999983; both round down
        (2.4999999999999996e-09, 2),
        (4.999999999999998e-10, 0),
        # whole nanoseconds stay exact (1e-9 * 1e9 == 1.0, 7e-9 * 1e9 == 7.0)
        (1e-9, 1),
        (7e-9, 7),
        (123e-9, 123),
        # large values: a second, an hour, a day are exact in float and stay exact
        (1.0, 1_000_000_000),
        (3600.0, 3_600_000_000_000),
        (86400.0, 86_400_000_000_000),
        # halves on top of large values: 1.0000000005 * 1e9 == 1000000000.5 and
        # 3600.0000000005 * 1e9 == 3600000000000.5 exactly; half up, not to even
        (1.0000000005, 1_000_000_001),
        (3600.0000000005, 3_600_000_000_001),
    ],
)
def test_to_ns(seconds, ns):
    got = to_ns(seconds)
    assert got == ns
    assert isinstance(got, int)


def test_to_ns_is_the_formula_float_addition_included():
    """The largest float below 0.5 ns: ``seconds * 1e9`` is 0.49999999999999994, below the half,
    but adding 0.5 in float rounds to 1.0, so SPEC's ``int(seconds * 1e9 + 0.5)`` gives 1. Every
    implementation that states the formula gets this; one that rounds exactly would get 0."""
    seconds = 4.999999999999999e-10
    assert seconds * 1e9 == 0.49999999999999994
    assert to_ns(seconds) == 1


MODEL = model_profile(
    dict(
        name="durations-model", num_layers=1, num_experts=2, top_k=1, expert_bytes=8300,
        dense_bytes_per_layer=4400, expert_flops_per_token=6250.0, dense_flops_per_token=3200.0,
    )
)
GPU = hardware_profile(
    dict(
        name="durations-gpu", h2d_bytes_per_s=2e11, transfer_latency_s=11.1e-9, mem_bytes_per_s=1e12,
        flops_per_s=1e12, memory_bytes=10**12, launch_s=2.1e-9,
    )
)


def test_load_seconds():
    # 11.1 ns latency + 8300 B / 2e11 B/s = 11.1 + 41.5 = 52.6 ns
    assert load_seconds(MODEL, GPU) == pytest.approx(52.6e-9, rel=1e-12)
    assert to_ns(load_seconds(MODEL, GPU)) == 53
    no_latency = hardware_profile(dict(GPU.as_dict(), transfer_latency_s=0.0))
    assert load_seconds(MODEL, no_latency) == pytest.approx(41.5e-9, rel=1e-12)


@pytest.mark.parametrize(
    "n, seconds, ns",
    [
        (1, 10.4e-9, 10),  # 2.1 + max(8.3 memory, 6.25 compute): memory-bound
        (2, 14.6e-9, 15),  # 2.1 + max(8.3, 12.5): compute-bound
        (3, 20.85e-9, 21),  # 2.1 + max(8.3, 18.75)
        (8, 52.1e-9, 52),  # 2.1 + max(8.3, 50.0)
    ],
)
def test_expert_seconds(n, seconds, ns):
    assert expert_seconds(MODEL, GPU, n) == pytest.approx(seconds, rel=1e-12)
    assert to_ns(expert_seconds(MODEL, GPU, n)) == ns


def test_expert_seconds_launch_is_added():
    no_launch = hardware_profile(dict(GPU.as_dict(), launch_s=0.0))
    assert expert_seconds(MODEL, no_launch, 1) == pytest.approx(8.3e-9, rel=1e-12)
    assert expert_seconds(MODEL, no_launch, 2) == pytest.approx(12.5e-9, rel=1e-12)


@pytest.mark.parametrize(
    "b, seconds, ns",
    [
        (1, 6.5e-9, 7),  # 2.1 + max(4.4 memory, 3.2 compute): memory-bound, an exact half
        (2, 8.5e-9, 9),  # 2.1 + max(4.4, 6.4): compute-bound, an exact half
        (3, 11.7e-9, 12),  # 2.1 + max(4.4, 9.6)
        (4, 14.9e-9, 15),  # 2.1 + max(4.4, 12.8)
    ],
)
def test_dense_seconds(b, seconds, ns):
    assert dense_seconds(MODEL, GPU, b) == pytest.approx(seconds, rel=1e-12)
    assert to_ns(dense_seconds(MODEL, GPU, b)) == ns


def test_dense_seconds_without_dense_weights():
    """A model with no dense weights per layer is compute-bound at every b."""
    model = model_profile(dict(MODEL.as_dict(), dense_bytes_per_layer=0))
    assert dense_seconds(model, GPU, 1) == pytest.approx(5.3e-9, rel=1e-12)  # 2.1 + 3.2
    assert dense_seconds(model, GPU, 2) == pytest.approx(8.5e-9, rel=1e-12)  # 2.1 + 6.4
