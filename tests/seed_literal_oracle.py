"""The seed write-up's ``OracleStrategy`` (strategy B), transcribed literally for comparison tests."""


class OracleStrategy:
    """Perfect future knowledge prefetching strategy"""

    def __init__(self, config):
        self.config = config
        self.future_routing = None  # Set externally with perfect predictions

    def set_future_routing(self, complete_routing_sequence):
        """Provide perfect future knowledge"""
        self.future_routing = complete_routing_sequence

    def predict_experts(self, routing_history, current_token):
        """Perfect prediction using future knowledge"""
        if not self.future_routing or current_token >= len(self.future_routing):
            return []

        # Look ahead window (configurable)
        lookahead_window = min(8, len(self.future_routing) - current_token - 1)
        predicted_experts = set()

        # Collect all experts needed in future tokens
        for i in range(1, lookahead_window + 1):
            future_token_idx = current_token + i
            if future_token_idx < len(self.future_routing):
                future_experts = self.future_routing[future_token_idx]
                predicted_experts.update(future_experts)

        return list(predicted_experts)

    def get_prediction_accuracy(self):
        """Oracle always has perfect accuracy"""
        return 1.0  # 100% prediction accuracy
