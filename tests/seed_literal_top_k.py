"""The seed write-up's ``TopKStrategy`` (strategy D), transcribed literally for comparison tests.

``config`` needs only ``num_experts``. Tests set ``update_frequency``, ``decay_factor`` and
``min_count_threshold`` on the instance after construction to vary them; the window of 10 is
fixed in this code.
"""
import numpy as np


class TopKStrategy:
    """Top-K most frequent experts prefetching strategy"""

    def __init__(self, config, k=32):
        self.config = config
        self.k = k

        # Frequency tracking
        self.expert_counts = np.zeros(config.num_experts, dtype=np.float64)
        self.total_accesses = 0

        # Top-K management
        self.current_top_k = set()
        self.update_frequency = 100  # Recompute top-K every N tokens
        self.token_count = 0

        # Decay parameters for temporal relevance
        self.decay_factor = 0.999
        self.min_count_threshold = 1.0

    def predict_experts(self, routing_history, current_token):
        """Return current top-K most frequent experts"""

        # Update frequency counts from recent history
        self._update_frequencies(routing_history)

        # Periodically recompute top-K set
        self.token_count += 1
        if self.token_count % self.update_frequency == 0:
            self._recompute_top_k()

        return list(self.current_top_k)

    def _update_frequencies(self, routing_history):
        """Update expert frequency counts"""

        # Apply temporal decay to all counts
        self.expert_counts *= self.decay_factor

        # Add counts from recent routing history
        recent_window = min(10, len(routing_history))  # Last 10 tokens
        for token_experts in routing_history[-recent_window:]:
            for expert_id in token_experts:
                self.expert_counts[expert_id] += 1.0
                self.total_accesses += 1

    def _recompute_top_k(self):
        """Recompute top-K expert set"""

        # Get indices of top-K experts by frequency
        top_k_indices = np.argsort(self.expert_counts)[-self.k:]

        # Filter out experts below minimum threshold
        valid_experts = []
        for expert_id in top_k_indices:
            if self.expert_counts[expert_id] >= self.min_count_threshold:
                valid_experts.append(expert_id)

        self.current_top_k = set(valid_experts)

        # If we don't have enough experts, add more from frequency ranking
        if len(self.current_top_k) < self.k:
            all_sorted = np.argsort(self.expert_counts)[::-1]
            for expert_id in all_sorted:
                if len(self.current_top_k) >= self.k:
                    break
                self.current_top_k.add(expert_id)

    def get_frequency_distribution(self):
        """Analyze expert frequency distribution"""
        if self.total_accesses == 0:
            return {}

        frequencies = self.expert_counts / self.total_accesses

        return {
            'frequencies': frequencies.tolist(),
            'top_k_coverage': sum(frequencies[list(self.current_top_k)]),
            'entropy': -np.sum(frequencies * np.log2(frequencies + 1e-10)),
            'concentration': np.max(frequencies) / np.mean(frequencies[frequencies > 0])
        }

    def get_complexity_score(self):
        return 4.0  # Medium-high complexity
