"""Reference adaptive-top-k: the seed's ``AdaptiveTopKStrategy`` (section 5, "Advanced
Variations") on top of the reference top-k layer, fed the layer's demand outcomes.

The seed's class keeps ``hit_rate_history`` and ``adapt_k_value`` but does not say who fills the
history or when ``adapt_k_value`` runs. Here (``docs/strategies/top_k.md``): ``feedback`` appends
each demand step's hit rate (``hits / |R|``, nothing for an empty ``R``), and every
``adjustment_period``-th call of ``predict_experts``, after its own update and recompute,
calls ``adapt_k_value``. The mean of the window is a left-to-right sum divided by the window (the
kernel sums in the same order; ``np.mean`` may round differently).
"""
from __future__ import annotations

from .top_k import TopKLayer

__all__ = ["AdaptiveTopKLayer", "AdaptiveTopKReference"]

class AdaptiveTopKLayer(TopKLayer):
    """One layer's adaptive top-k: the seed's ``adapt_k_value`` with its constants as parameters."""

    def __init__(self, num_experts, target_hit_rate=0.95, adjustment_period=500, hit_rate_window=10,
                 tolerance=0.02, k_step_up=4, k_step_down=2, k_min=8, k_max=0, **top_k_params):
        super().__init__(num_experts, **top_k_params)
        self.target_hit_rate = float(target_hit_rate)
        self.k_adjustment_period = int(adjustment_period)
        self.hit_rate_window = int(hit_rate_window)
        self.tolerance = float(tolerance)
        self.k_step_up = int(k_step_up)
        self.k_step_down = int(k_step_down)
        self.k_min = int(k_min)
        self.k_max = int(k_max) if int(k_max) > 0 else self.num_experts // 2
        self.hit_rate_history = []

    def record_outcomes(self, outcomes):
        """The feedback: this step's hit rate (outcome 0 is a hit; late and miss are not)."""
        if outcomes:
            self.hit_rate_history.append(sum(1 for o in outcomes if o == 0) / len(outcomes))

    def predict_experts(self, routing_history, current_token):
        self._update_frequencies(routing_history)
        self.token_count += 1
        if self.token_count % self.update_frequency == 0:
            self._recompute_top_k()
        if self.token_count % self.k_adjustment_period == 0:
            self.adapt_k_value()
        return self._ordered()

    def adapt_k_value(self):
        if len(self.hit_rate_history) < self.hit_rate_window:
            return
        recent_hit_rate = sum(self.hit_rate_history[-self.hit_rate_window:]) / self.hit_rate_window
        if recent_hit_rate < self.target_hit_rate - self.tolerance:
            self.k = min(self.k + self.k_step_up, self.k_max)
        elif recent_hit_rate > self.target_hit_rate + self.tolerance:
            self.k = max(self.k - self.k_step_down, self.k_min)
        self._recompute_top_k()

    def _recompute_top_k(self):
        if self.k < 1:  # E = 1: the upper bound E // 2 is 0
            self.current_top_k = []
            return
        super()._recompute_top_k()


class AdaptiveTopKReference:
    """One :class:`AdaptiveTopKLayer` per layer; ``feedback`` before ``observe`` at each position."""

    def __init__(self, num_layers, num_experts, top_k, schedule, **params):
        self.num_experts = int(num_experts)
        self.layers = [AdaptiveTopKLayer(num_experts, **params) for _ in range(int(num_layers))]
        self.history = [[] for _ in range(int(num_layers))]

    def feedback(self, s, l, R, outcomes):
        self.layers[l].record_outcomes([int(o) for o in outcomes])

    def observe(self, s, l, R, n):
        self.history[l].append([int(e) for e in R])
        experts = self.layers[l].predict_experts(self.history[l], s)
        return [l * self.num_experts + int(e) for e in experts]
