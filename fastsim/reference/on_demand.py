"""Reference on-demand strategy: the seed's ``OnDemandStrategy`` (it never predicts)."""


class OnDemandStrategy:
    """The seed's class: ``predict_experts`` always returns ``[]``."""

    def __init__(self, config=None):
        self.config = config

    def predict_experts(self, routing_history, current_token):
        return []


class OnDemandReference:
    """One seed instance per layer, driven as SPEC section 3 item 3 says."""

    def __init__(self, num_layers, num_experts, top_k, schedule, **params):
        self.num_experts = num_experts
        self.layers = [OnDemandStrategy() for _ in range(num_layers)]
        self.history = [[] for _ in range(num_layers)]

    def observe(self, s, l, R, n):
        self.history[l].append(list(R))
        return [l * self.num_experts + e for e in self.layers[l].predict_experts(self.history[l], s)]
