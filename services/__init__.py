"""Domain logic that is neither a view nor a model: codes, methods, policy, delivery, logging."""
