"""The seed write-up's "Advanced Features" of strategy E (section 6), transcribed literally:
``adaptive_weight_update`` (a method of the seed's strategy, given free-standing) and
``SparseTransitionMatrix``. Only the imports are added; the code is the seed's text.
"""


def adaptive_weight_update(self, predictions, ground_truth, learning_rate=0.01):
    """Update fusion weights based on recent performance"""

    component_errors = {}

    for component, pred_experts in predictions.items():
        # Calculate component-specific error
        pred_set = set(pred_experts)
        true_set = set(ground_truth)

        # Use F1 score as quality metric
        if len(pred_set) > 0:
            intersection = pred_set.intersection(true_set)
            precision = len(intersection) / len(pred_set)
            recall = len(intersection) / len(true_set) if len(true_set) > 0 else 0
            f1 = 2 * precision * recall / (precision + recall + 1e-10)
            component_errors[component] = 1 - f1  # Convert to error
        else:
            component_errors[component] = 1.0  # Maximum error for empty predictions

    # Update weights inversely proportional to error
    total_inverse_error = sum(1 / (error + 0.1) for error in component_errors.values())

    for component, error in component_errors.items():
        target_weight = (1 / (error + 0.1)) / total_inverse_error
        current_weight = self.fusion_weights[component]

        # Exponential moving average update
        self.fusion_weights[component] = (
            (1 - learning_rate) * current_weight +
            learning_rate * target_weight
        )


class SparseTransitionMatrix:
    """Memory-efficient sparse transition matrix"""

    def __init__(self, num_experts, max_entries_per_expert=32):
        self.num_experts = num_experts
        self.max_entries = max_entries_per_expert

        # Use dictionary of dictionaries for sparse storage
        self.transitions = {}

    def update_transition(self, from_expert, to_expert, weight=1.0):
        """Update transition probability"""

        if from_expert not in self.transitions:
            self.transitions[from_expert] = {}

        current_transitions = self.transitions[from_expert]

        # Add/update transition
        if to_expert in current_transitions:
            current_transitions[to_expert] += weight
        else:
            current_transitions[to_expert] = weight

        # Limit memory usage by keeping only top transitions
        if len(current_transitions) > self.max_entries:
            # Keep only top transitions
            sorted_transitions = sorted(
                current_transitions.items(),
                key=lambda x: x[1],
                reverse=True
            )[:self.max_entries]
            self.transitions[from_expert] = dict(sorted_transitions)

    def get_top_transitions(self, from_expert, k=8):
        """Get top-k transitions from given expert"""

        if from_expert not in self.transitions:
            return []

        transitions = self.transitions[from_expert]
        sorted_transitions = sorted(
            transitions.items(),
            key=lambda x: x[1],
            reverse=True
        )

        return [expert_id for expert_id, _ in sorted_transitions[:k]]
