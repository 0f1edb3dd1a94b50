"""Composing skills (sum, min, max of their Q-functions), sampling the composite, and bounding its error: exact
on a grid, certified from samples, and the oracle that checks them on MultiGoal."""
