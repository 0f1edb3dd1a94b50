"""Networks: the MLP and its private fused ops, the soft Q-function and samplers, composites of them, and the
skill (networks plus a JSON description) that the rest of skillbank trains, stores and composes."""
