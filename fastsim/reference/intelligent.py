"""Reference intelligent strategy: the seed's ``IntelligentStrategy``, one instance per layer.

It follows the seed's class method by method, with three changes (see ``docs/strategies.md``):

* the matrix decay is lazy: ``transition_scaled = M / scale`` and only ``scale`` decays, with a
  per-row sum in the same units (the kernel uses the same algebra, so both round alike);
* every truncation ranks by the component's own score, then the id, instead of set order or an
  unstable ascending argsort; the fused list is ordered most wanted first;
* the limits, thresholds, window and rates are parameters, and ``zero_score_fill=False`` drops the
  zero-score experts the seed's ``argsort(...)[-32:]`` pads its answer with.

Two of the seed's "Advanced Features" are options: ``weight_update=1`` replaces
``_adapt_fusion_weights`` by the seed's ``adaptive_weight_update`` (ground truth: the current set,
as ``_adapt_fusion_weights`` uses), and ``max_transitions=N`` keeps the matrix as the seed's
``SparseTransitionMatrix`` (at most ``N`` entries per expert; of the entries tied at the cut the
highest id goes, where the seed's stable sort drops the latest in dict order).
"""
from __future__ import annotations

import numpy as np

#: The matrix is multiplied out before its running scale falls below this (shared with the kernel).
from ..lazy_decay import SCALE_FLOOR as RENORMALISE_BELOW


def _ranked(scores: dict[int, float], limit: int) -> list[int]:
    """Keys of ``scores`` by score descending, then id ascending, at most ``limit`` of them."""
    return sorted(scores, key=lambda e: (-scores[e], e))[:limit]


class IntelligentLayer:
    """The seed's ``IntelligentStrategy`` for one layer, with lazy matrix decay.

    After each call, ``last`` holds what the call computed: the untruncated transition and pattern
    candidates (``{expert: largest probability}``), the components' truncated lists, the fused
    scores and the weights before adaptation (tests compare them with the literal seed class).
    """

    def __init__(
        self,
        num_experts,
        adaptation_rate=0.1,
        decay_rate=0.99,
        weight_learning_rate=0.01,
        max_predictions=32,
        transition_limit=12,
        frequency_limit=8,
        recency_limit=6,
        pattern_limit=8,
        transition_threshold=0.05,
        pattern_threshold=0.1,
        history_window=10,
        zero_score_fill=True,
        weight_update=0,
        max_transitions=0,
    ):
        self.num_experts = E = int(num_experts)
        # Learning components; the true matrix is transition_scaled * scale
        self.transition_scaled = np.zeros((E, E))
        self.row_sum_scaled = np.zeros(E)
        self.scale = 1.0
        self.expert_frequency = np.zeros(E)
        self.expert_recency = np.zeros(E)

        self.adaptation_rate = float(adaptation_rate)
        self.decay_rate = float(decay_rate)
        self.time_step = 0

        self.fusion_weights = {"transition": 0.4, "frequency": 0.3, "recency": 0.2, "pattern": 0.1}
        self.weight_learning_rate = float(weight_learning_rate)

        self.max_predictions = int(max_predictions)
        self.limits = {
            "transition": int(transition_limit),
            "frequency": int(frequency_limit),
            "recency": int(recency_limit),
            "pattern": int(pattern_limit),
        }
        self.transition_threshold = float(transition_threshold)
        self.pattern_threshold = float(pattern_threshold)
        self.history_window = int(history_window)
        self.zero_score_fill = bool(zero_score_fill)
        self.weight_update = int(weight_update)
        self.max_transitions = int(max_transitions)
        self.live = [set() for _ in range(E)]  # with max_transitions: the entries each row keeps
        self.last: dict = {}

    @property
    def transition_matrix(self) -> np.ndarray:
        """The seed's matrix (decay multiplied in)."""
        return self.transition_scaled * self.scale

    def predict_experts(self, routing_history, current_token):
        if len(routing_history) < 1:
            # The seed's cold start; the driver always passes the current set, so it never fires
            return list(range(min(self.max_predictions, self.num_experts)))

        self.time_step += 1
        self._update_learning_models(routing_history[-self.history_window:])

        predictions = {}
        predictions["transition"] = self._predict_from_transitions(routing_history)
        predictions["frequency"] = self._predict_from_frequency()
        predictions["recency"] = self._predict_from_recency()
        predictions["pattern"] = self._predict_from_patterns(routing_history)
        self.last["components"] = {k: list(v) for k, v in predictions.items()}
        self.last["weights_before"] = dict(self.fusion_weights)

        final_predictions = self._fuse_predictions(predictions)
        if self.weight_update:
            self.adaptive_weight_update(predictions, routing_history[-1], self.weight_learning_rate)
        else:
            self._adapt_fusion_weights(predictions, routing_history)
        return final_predictions

    def _probabilities_above(self, current_experts, threshold) -> dict[int, float]:
        """``{expert: largest probability from a current expert}`` over probabilities > threshold."""
        found: dict[int, float] = {}
        for expert_id in current_experts:
            row_sum = self.row_sum_scaled[expert_id]
            if row_sum > 0:
                # the scale cancels: M'[i] / rowsum'[i] == M[i] / rowsum[i]
                probabilities = self.transition_scaled[expert_id] / row_sum
                for e in np.flatnonzero(probabilities > threshold).tolist():
                    found[e] = max(found.get(e, 0.0), float(probabilities[e]))
        return found

    def _predict_from_transitions(self, routing_history):
        self.last["transition_all"] = {}
        if len(routing_history) < 2:
            return []
        found = self._probabilities_above(routing_history[-1], self.transition_threshold)
        self.last["transition_all"] = found
        return _ranked(found, self.limits["transition"])

    def _predict_from_frequency(self):
        scores = {e: float(v) for e, v in enumerate(self.expert_frequency)}
        return _ranked(scores, self.limits["frequency"])

    def _predict_from_recency(self):
        scores = {e: float(v) for e, v in enumerate(self.expert_recency)}
        return _ranked(scores, self.limits["recency"])

    def _predict_from_patterns(self, routing_history):
        self.last["pattern_all"] = {}
        if len(routing_history) < 3:
            return []
        found = self._probabilities_above(set(routing_history[-1]), self.pattern_threshold)
        self.last["pattern_all"] = found
        return _ranked(found, self.limits["pattern"])

    def _fuse_predictions(self, predictions):
        expert_scores = np.zeros(self.num_experts)
        for component, experts in predictions.items():
            weight = self.fusion_weights[component]
            for expert_id in experts:
                expert_scores[expert_id] += weight
        self.last["scores"] = expert_scores.copy()

        scores = {e: float(v) for e, v in enumerate(expert_scores)}
        if not self.zero_score_fill:
            scores = {e: v for e, v in scores.items() if v > 0}
        return _ranked(scores, self.max_predictions)

    def _update_learning_models(self, recent_history):
        # 1. transitions, added in the units of the lazy scale
        step = self.adaptation_rate / self.scale
        for i in range(len(recent_history) - 1):
            current_experts = recent_history[i]
            next_experts = recent_history[i + 1]
            for curr_expert in current_experts:
                for next_expert in next_experts:
                    if self.max_transitions:
                        self.update_transition(curr_expert, next_expert, step)
                        continue
                    self.transition_scaled[curr_expert][next_expert] += step
                    self.row_sum_scaled[curr_expert] += step

        # 2. frequency
        for token_experts in recent_history:
            for expert_id in token_experts:
                self.expert_frequency[expert_id] += 1.0

        # 3. recency with time-based decay
        self.expert_recency *= self.decay_rate
        if recent_history:
            for expert_id in recent_history[-1]:
                self.expert_recency[expert_id] = self.time_step

        # 4. global decay: lazy for the matrix
        self.scale *= self.decay_rate
        self.expert_frequency *= self.decay_rate
        if self.scale < RENORMALISE_BELOW:
            self.transition_scaled *= self.scale
            self.row_sum_scaled *= self.scale
            self.scale = 1.0

    def update_transition(self, from_expert, to_expert, weight):
        """The seed's ``SparseTransitionMatrix.update_transition`` on the scaled matrix: add, then
        drop the smallest entry once a row holds more than ``max_transitions`` (ties: highest id)."""
        row = self.transition_scaled[from_expert]
        live = self.live[from_expert]
        row[to_expert] += weight  # an entry not kept holds 0.0, and 0.0 + weight == weight
        self.row_sum_scaled[from_expert] += weight
        live.add(to_expert)
        if len(live) > self.max_transitions:
            drop = min(live, key=lambda e: (row[e], -e))
            self.row_sum_scaled[from_expert] -= row[drop]
            row[drop] = 0.0
            live.discard(drop)

    def adaptive_weight_update(self, predictions, ground_truth, learning_rate=0.01):
        """The seed's ``adaptive_weight_update``, as written."""
        component_errors = {}
        for component, pred_experts in predictions.items():
            pred_set = set(pred_experts)
            true_set = set(ground_truth)
            if len(pred_set) > 0:
                intersection = pred_set.intersection(true_set)
                precision = len(intersection) / len(pred_set)
                recall = len(intersection) / len(true_set) if len(true_set) > 0 else 0
                f1 = 2 * precision * recall / (precision + recall + 1e-10)
                component_errors[component] = 1 - f1
            else:
                component_errors[component] = 1.0
        total_inverse_error = sum(1 / (error + 0.1) for error in component_errors.values())
        for component, error in component_errors.items():
            target_weight = (1 / (error + 0.1)) / total_inverse_error
            current_weight = self.fusion_weights[component]
            self.fusion_weights[component] = (1 - learning_rate) * current_weight + learning_rate * target_weight

    def _adapt_fusion_weights(self, component_predictions, routing_history):
        if len(routing_history) < 2:
            return
        actual_next_experts = set(routing_history[-1])
        for component, predicted_experts in component_predictions.items():
            predicted_set = set(predicted_experts)
            if len(predicted_set) > 0 and len(actual_next_experts) > 0:
                intersection = predicted_set.intersection(actual_next_experts)
                precision = len(intersection) / len(predicted_set)
                recall = len(intersection) / len(actual_next_experts)
                f1_score = 2 * precision * recall / (precision + recall + 1e-10)
                weight_delta = self.weight_learning_rate * (f1_score - 0.5)
                self.fusion_weights[component] += weight_delta

        total_weight = sum(self.fusion_weights.values())
        if total_weight > 0:
            for component in self.fusion_weights:
                self.fusion_weights[component] /= total_weight


class IntelligentReference:
    """One :class:`IntelligentLayer` per layer, driven as SPEC section 3 item 3 says.

    Its parameters and defaults are the seed's, as :class:`IntelligentLayer` takes them.
    """

    def __init__(self, num_layers, num_experts, top_k, schedule, **params):
        self.num_experts = num_experts
        self.layers = [IntelligentLayer(num_experts, **params) for _ in range(num_layers)]
        self.history = [[] for _ in range(num_layers)]

    def observe(self, s, l, R, n):
        self.history[l].append([int(e) for e in R])
        wanted = self.layers[l].predict_experts(self.history[l], s)
        return [l * self.num_experts + e for e in wanted]
