"""Pure-Python reference of strategy C, multi-look (the seed's ``MultiLookStrategy``).

:class:`MultiLookLayer` follows the seed's class line by line, including its habit of re-counting
every sequence pattern of the whole history on every call (quadratic in the history length, which
is what the kernel's closed form must reproduce). It departs from the seed only where fastsim must
fix something the seed leaves open (see ``docs/strategies/multi_look.md``):

* the seed's hard-coded constants are parameters with the seed's values as defaults;
* the pattern table is bounded: once a layer holds ``max_patterns`` patterns, a pattern not yet
  seen is not recorded (its occurrences never count), and once it holds ``max_successors``
  (pattern, next expert) pairs, a new pair is not recorded; recorded entries keep counting;
* the predicted set is returned in ascending id order (the seed returns ``list(set)``) and then
  truncated to ``max_predictions``.
"""
from __future__ import annotations

__all__ = ["MultiLookLayer", "MultiLookReference", "Reference"]


class MultiLookLayer:
    """One layer's multi-look state and the seed's ``predict_experts``.

    ``predict_experts`` returns the predicted *set* (before ordering and truncation).
    """

    def __init__(
        self,
        pattern_length=3,
        lookahead_steps=4,
        min_pattern_frequency=3,
        max_patterns=1 << 20,
        max_successors=1 << 22,
        temporal_period=64,
        temporal_window=10,
    ):
        # Pattern recognition components
        self.sequence_patterns = {}  # Token sequence -> future experts
        self.expert_cooccurrence = {}  # Expert A -> {Expert B: frequency}
        self.temporal_patterns = {}  # Time position -> likely experts
        self.transition_chains = {}  # never filled, as in the seed

        self.pattern_length = int(pattern_length)
        self.lookahead_steps = int(lookahead_steps)  # unused by the seed's prediction path
        self.min_pattern_frequency = min_pattern_frequency
        self.max_patterns = int(max_patterns)
        self.max_successors = int(max_successors)
        self.num_successors = 0  # (pattern, next expert) pairs recorded so far
        self.temporal_period = int(temporal_period)
        self.temporal_window = int(temporal_window)

    def predict_experts(self, routing_history, current_token):
        if len(routing_history) < self.pattern_length:
            return set()

        self._update_patterns(routing_history)

        predicted_experts = set()
        predicted_experts.update(self._predict_from_sequences(routing_history))
        predicted_experts.update(self._predict_from_cooccurrence(routing_history))
        predicted_experts.update(self._predict_from_temporal(current_token))
        predicted_experts.update(self._predict_from_chains(routing_history))
        return predicted_experts

    def _predict_from_sequences(self, routing_history):
        predictions = set()
        recent_sequence = tuple(tuple(sorted(experts)) for experts in routing_history[-self.pattern_length :])
        if recent_sequence in self.sequence_patterns:
            pattern_data = self.sequence_patterns[recent_sequence]
            if pattern_data["frequency"] >= self.min_pattern_frequency:
                confidence_weighted_experts = [
                    expert
                    for expert, freq in pattern_data["next_experts"].items()
                    if freq >= self.min_pattern_frequency * 0.3
                ]
                predictions.update(confidence_weighted_experts)
        return predictions

    def _predict_from_cooccurrence(self, routing_history):
        predictions = set()
        if len(routing_history) < 1:
            return predictions
        current_experts = routing_history[-1]
        for expert_id in current_experts:
            if expert_id in self.expert_cooccurrence:
                cooccurring = self.expert_cooccurrence[expert_id]
                for coexpert, frequency in cooccurring.items():
                    if frequency >= self.min_pattern_frequency:
                        predictions.add(coexpert)
        return predictions

    def _predict_from_temporal(self, current_token):
        predictions = set()
        sequence_position = current_token % self.temporal_period
        if sequence_position in self.temporal_patterns:
            temporal_data = self.temporal_patterns[sequence_position]
            predictions.update(
                expert for expert, freq in temporal_data.items() if freq >= self.min_pattern_frequency
            )
        return predictions

    def _predict_from_chains(self, routing_history):
        predictions = set()
        if len(routing_history) < 2:
            return predictions
        for chain_length in range(2, min(4, len(routing_history))):
            chain = tuple(tuple(sorted(experts)) for experts in routing_history[-chain_length:])
            if chain in self.transition_chains:
                chain_data = self.transition_chains[chain]
                if chain_data["frequency"] >= self.min_pattern_frequency:
                    predictions.update(chain_data["next_experts"])
        return predictions

    def _update_patterns(self, routing_history):
        length = self.pattern_length

        # Sequence patterns: the whole history is counted again on every call.
        if len(routing_history) >= length + 1:
            for i in range(len(routing_history) - length):
                pattern = tuple(tuple(sorted(experts)) for experts in routing_history[i : i + length])
                next_experts = routing_history[i + length]

                if pattern not in self.sequence_patterns:
                    if len(self.sequence_patterns) >= self.max_patterns:
                        continue  # table full: a new pattern is not recorded
                    self.sequence_patterns[pattern] = {"frequency": 0, "next_experts": {}}

                data = self.sequence_patterns[pattern]
                data["frequency"] += 1
                for expert in next_experts:
                    if expert not in data["next_experts"]:
                        if self.num_successors >= self.max_successors:
                            continue  # successor table full: a new pair is not recorded
                        self.num_successors += 1
                        data["next_experts"][expert] = 0
                    data["next_experts"][expert] += 1

        # Co-occurrence: the last transition, once per call.
        if len(routing_history) >= 2:
            current_experts = routing_history[-2]
            next_experts = routing_history[-1]
            for curr_expert in current_experts:
                if curr_expert not in self.expert_cooccurrence:
                    self.expert_cooccurrence[curr_expert] = {}
                for next_expert in next_experts:
                    if next_expert not in self.expert_cooccurrence[curr_expert]:
                        self.expert_cooccurrence[curr_expert][next_expert] = 0
                    self.expert_cooccurrence[curr_expert][next_expert] += 1

        # Temporal positions: the recent window, again on every call. For a history shorter than
        # the window the positions start below zero and wrap as Python's ``%`` does.
        window = self.temporal_window
        for token_idx, experts in enumerate(routing_history[-window:]):
            position = (len(routing_history) - window + token_idx) % self.temporal_period
            if position not in self.temporal_patterns:
                self.temporal_patterns[position] = {}
            for expert in experts:
                if expert not in self.temporal_patterns[position]:
                    self.temporal_patterns[position][expert] = 0
                self.temporal_patterns[position][expert] += 1


class MultiLookReference:
    """Reference driver: one :class:`MultiLookLayer` per layer, fed that layer's ``R`` sets.

    ``observe(s, l, R, n)`` appends ``R`` to layer ``l``'s history, asks that layer's instance to
    predict with ``current_token = s`` and returns the keys ``l * E + e`` of the predicted experts
    in ascending id order, truncated to ``max_predictions``.
    """

    def __init__(
        self,
        num_layers,
        num_experts,
        top_k,
        schedule=None,
        pattern_length=3,
        lookahead_steps=4,
        min_pattern_frequency=3,
        max_predictions=32,
        max_patterns=1 << 20,
        max_successors=1 << 22,
        temporal_period=64,
        temporal_window=10,
    ):
        self.num_layers = int(num_layers)
        self.num_experts = int(num_experts)
        self.max_predictions = int(max_predictions)
        self.layers = [
            MultiLookLayer(
                pattern_length,
                lookahead_steps,
                min_pattern_frequency,
                max_patterns,
                max_successors,
                temporal_period,
                temporal_window,
            )
            for _ in range(self.num_layers)
        ]
        self.histories = [[] for _ in range(self.num_layers)]

    def observe(self, s, l, R, n=None):
        history = self.histories[l]
        history.append([int(e) for e in R])
        predicted = self.layers[l].predict_experts(history, s)
        base = l * self.num_experts
        return [base + e for e in sorted(predicted)[: self.max_predictions]]


Reference = MultiLookReference
