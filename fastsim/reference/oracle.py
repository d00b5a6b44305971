"""Pure-Python reference of strategy B (oracle), written after the seed's ``OracleStrategy``."""
from __future__ import annotations

__all__ = ["OracleLayer", "OracleReference"]


class OracleLayer:
    """The seed's ``OracleStrategy`` for one layer, with ``lookahead`` in place of its fixed 8.

    The seed returns ``list(set(...))``; this returns the same experts ordered nearest step first,
    then ascending id (SPEC section 4).
    """

    def __init__(self, lookahead=8):
        self.lookahead = int(lookahead)
        self.future_routing = None

    def set_future_routing(self, complete_routing_sequence):
        self.future_routing = complete_routing_sequence

    def predict_experts(self, routing_history, current_token):
        if not self.future_routing or current_token >= len(self.future_routing):
            return []
        lookahead_window = min(self.lookahead, len(self.future_routing) - current_token - 1)
        nearest = {}  # expert -> steps ahead of its first appearance in the window
        for i in range(1, lookahead_window + 1):
            future_token_idx = current_token + i
            if future_token_idx < len(self.future_routing):
                for expert in self.future_routing[future_token_idx]:
                    nearest.setdefault(expert, i)
        return sorted(nearest, key=lambda e: (nearest[e], e))


class OracleReference:
    """One :class:`OracleLayer` per layer, each told its layer's ``R`` sets over the whole replay.

    ``observe(s, l, R, n)`` returns the wanted keys ``l * E + e``, most wanted first.
    """

    def __init__(self, num_layers, num_experts, top_k, schedule, lookahead=8):
        self.num_experts = int(num_experts)
        self.layers = []
        self.history = []
        for l in range(int(num_layers)):
            layer = OracleLayer(lookahead)
            layer.set_future_routing(
                [[int(e) for e in schedule.R(s, l)[0]] for s in range(schedule.num_steps)]
            )
            self.layers.append(layer)
            self.history.append([])

    def observe(self, s, l, R, n):
        self.history[l].append([int(e) for e in R])
        experts = self.layers[l].predict_experts(self.history[l], s)
        return [l * self.num_experts + int(e) for e in experts]
