"""The seed's ``MultiLookStrategy`` (strategy C), transcribed literally for tests.

The class body below is the seed's code unchanged (trailing whitespace aside); the tests compare
fastsim's reference against it. It re-counts every pattern of the whole history on every call, so
it is quadratic in the history length: use it on short traces only.
"""
# fmt: off


class MultiLookStrategy:
    """Multi-step lookahead with pattern recognition"""

    def __init__(self, config):
        self.config = config

        # Pattern recognition components
        self.sequence_patterns = {}      # Token sequence → future experts
        self.expert_cooccurrence = {}    # Expert A → {Expert B: frequency}
        self.temporal_patterns = {}      # Time position → likely experts
        self.transition_chains = {}      # Multi-hop transition patterns

        # Learning parameters
        self.pattern_length = 3          # Tokens to analyze for patterns
        self.lookahead_steps = 4         # Steps to predict ahead
        self.min_pattern_frequency = 3   # Minimum occurrences to trust pattern

    def predict_experts(self, routing_history, current_token):
        """Multi-strategy prediction using learned patterns"""
        if len(routing_history) < self.pattern_length:
            return []

        # Update pattern knowledge
        self._update_patterns(routing_history)

        predicted_experts = set()

        # 1. Sequence pattern matching
        sequence_predictions = self._predict_from_sequences(routing_history)
        predicted_experts.update(sequence_predictions)

        # 2. Expert co-occurrence analysis
        cooccurrence_predictions = self._predict_from_cooccurrence(routing_history)
        predicted_experts.update(cooccurrence_predictions)

        # 3. Temporal pattern recognition
        temporal_predictions = self._predict_from_temporal(current_token)
        predicted_experts.update(temporal_predictions)

        # 4. Multi-hop transition chains
        chain_predictions = self._predict_from_chains(routing_history)
        predicted_experts.update(chain_predictions)

        return list(predicted_experts)[:32]  # Limit cache size

    def _predict_from_sequences(self, routing_history):
        """Pattern matching on token sequences"""
        predictions = set()

        # Analyze recent sequence patterns
        recent_sequence = tuple(
            tuple(sorted(experts)) for experts in routing_history[-self.pattern_length:]
        )

        if recent_sequence in self.sequence_patterns:
            pattern_data = self.sequence_patterns[recent_sequence]
            if pattern_data['frequency'] >= self.min_pattern_frequency:
                # High-confidence pattern found
                confidence_weighted_experts = [
                    expert for expert, freq in pattern_data['next_experts'].items()
                    if freq >= self.min_pattern_frequency * 0.3
                ]
                predictions.update(confidence_weighted_experts)

        return predictions

    def _predict_from_cooccurrence(self, routing_history):
        """Expert co-occurrence relationship analysis"""
        predictions = set()

        if len(routing_history) < 1:
            return predictions

        current_experts = routing_history[-1]

        # For each currently active expert, find frequently co-occurring experts
        for expert_id in current_experts:
            if expert_id in self.expert_cooccurrence:
                cooccurring = self.expert_cooccurrence[expert_id]

                # Add experts that co-occur with high frequency
                for coexpert, frequency in cooccurring.items():
                    if frequency >= self.min_pattern_frequency:
                        predictions.add(coexpert)

        return predictions

    def _predict_from_temporal(self, current_token):
        """Temporal position-based predictions"""
        predictions = set()

        # Analyze position within sequence (assuming some periodicity)
        sequence_position = current_token % 64  # Assume 64-token patterns

        if sequence_position in self.temporal_patterns:
            temporal_data = self.temporal_patterns[sequence_position]
            high_freq_experts = [
                expert for expert, freq in temporal_data.items()
                if freq >= self.min_pattern_frequency
            ]
            predictions.update(high_freq_experts)

        return predictions

    def _predict_from_chains(self, routing_history):
        """Multi-hop transition chain analysis"""
        predictions = set()

        if len(routing_history) < 2:
            return predictions

        # Look for longer-term dependencies (A → B → C patterns)
        for chain_length in range(2, min(4, len(routing_history))):
            chain = tuple(
                tuple(sorted(experts))
                for experts in routing_history[-chain_length:]
            )

            if chain in self.transition_chains:
                chain_data = self.transition_chains[chain]
                if chain_data['frequency'] >= self.min_pattern_frequency:
                    predictions.update(chain_data['next_experts'])

        return predictions

    def _update_patterns(self, routing_history):
        """Update all pattern recognition models"""

        # Update sequence patterns
        if len(routing_history) >= self.pattern_length + 1:
            for i in range(len(routing_history) - self.pattern_length):
                pattern = tuple(
                    tuple(sorted(experts))
                    for experts in routing_history[i:i+self.pattern_length]
                )
                next_experts = routing_history[i + self.pattern_length]

                if pattern not in self.sequence_patterns:
                    self.sequence_patterns[pattern] = {
                        'frequency': 0,
                        'next_experts': {}
                    }

                self.sequence_patterns[pattern]['frequency'] += 1
                for expert in next_experts:
                    if expert not in self.sequence_patterns[pattern]['next_experts']:
                        self.sequence_patterns[pattern]['next_experts'][expert] = 0
                    self.sequence_patterns[pattern]['next_experts'][expert] += 1

        # Update co-occurrence patterns
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

        # Update temporal patterns
        for token_idx, experts in enumerate(routing_history[-10:]):  # Recent history
            position = (len(routing_history) - 10 + token_idx) % 64

            if position not in self.temporal_patterns:
                self.temporal_patterns[position] = {}

            for expert in experts:
                if expert not in self.temporal_patterns[position]:
                    self.temporal_patterns[position][expert] = 0
                self.temporal_patterns[position][expert] += 1

    def get_complexity_score(self):
        return 8.5  # Very high complexity
