"""Recommending: rules as data, published hyperparameters, costs, the Recommendation and its views."""
