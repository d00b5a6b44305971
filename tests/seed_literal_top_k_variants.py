"""The seed write-up's top-k variants (strategy D, "Advanced Variations"), transcribed literally.

``AdaptiveTopKStrategy`` and ``_update_frequencies_weighted`` are the seed's text. Only what the
seed leaves undefined is added: the imports, and ``WeightedTopKStrategy``, which puts the seed's
free function where ``TopKStrategy`` calls ``_update_frequencies`` (the seed gives the function
without saying which class it belongs to). Who fills ``hit_rate_history`` and when
``adapt_k_value`` runs is not in the seed either: the tests do both, as ``docs/strategies/top_k.md``
states.
"""
import numpy as np

from seed_literal_top_k import TopKStrategy


class AdaptiveTopKStrategy(TopKStrategy):
    """Top-K with adaptive K selection"""

    def __init__(self, config, target_hit_rate=0.95):
        super().__init__(config)
        self.target_hit_rate = target_hit_rate
        self.hit_rate_history = []
        self.k_adjustment_period = 500

    def adapt_k_value(self):
        """Dynamically adjust K based on hit rate"""
        if len(self.hit_rate_history) < 10:
            return

        recent_hit_rate = np.mean(self.hit_rate_history[-10:])

        if recent_hit_rate < self.target_hit_rate - 0.02:
            # Increase K to improve hit rate
            self.k = min(self.k + 4, self.config.num_experts // 2)
        elif recent_hit_rate > self.target_hit_rate + 0.02:
            # Decrease K to save memory
            self.k = max(self.k - 2, 8)

        self._recompute_top_k()


def _update_frequencies_weighted(self, routing_history):
    """Update with position-based weighting"""

    # Apply temporal decay
    self.expert_counts *= self.decay_factor

    # Weight recent tokens more heavily
    for i, token_experts in enumerate(routing_history[-10:]):
        # Linear decay: more recent = higher weight
        weight = (i + 1) / 10.0

        for expert_id in token_experts:
            self.expert_counts[expert_id] += weight
            self.total_accesses += weight


class WeightedTopKStrategy(TopKStrategy):
    """``TopKStrategy`` updating its counts with the seed's weighted function."""

    _update_frequencies = _update_frequencies_weighted
