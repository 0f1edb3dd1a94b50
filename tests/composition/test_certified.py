"""Certified intervals from Bellman residuals (skillbank.composition.certified, docs/bounds.md "Learned skills"):
each step checked exactly on a grid, for oracle constituents and for arbitrary Q-functions, and the
data-only certificate checked against the exact optimum for the shipped learned skills."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from skillbank.composition.certified import policy_rollouts, residual_range
from skillbank.composition.grid_bounds import q_on_grid, weighted_divergence
from skillbank.composition.oracle import GridModel
from tests.composition.test_bounds import EAST, NORTH, REPO, _random_q, corner


def grid_interval(grid, q, reward, alpha, gamma):
    """(R3) on every grid (state, action), with the residual range taken over the whole grid."""
    v = grid.soft_value(q, alpha)
    rho = reward + gamma * grid.next_expectation(v) - q
    spread = residual_range(rho.flatten(), grid.done.flatten(), gamma)
    low = reward + gamma * grid.next_expectation(v + spread["lo"])
    high = reward + gamma * grid.next_expectation(v + spread["hi"])
    return rho, low, high, spread


@pytest.mark.parametrize("alpha", [0.5, 1.0, 4.0])
def test_with_oracle_constituents_the_interval_covers_the_optimum_at_every_grid_point(alpha):
    grid, gamma, weights = GridModel(corner(EAST), 0.5, 5), 0.99, [0.3, 0.7]
    qs = [grid.solve(grid.reward(corner(w)), alpha, gamma, tol=1e-12).q for w in (EAST, NORTH)]
    q_sigma = 0.3 * qs[0] + 0.7 * qs[1]
    reward = grid.reward(corner([EAST, NORTH], weights))
    q_star = grid.solve(reward, alpha, gamma, tol=1e-12).q
    rho, low, high, spread = grid_interval(grid, q_sigma, reward, alpha, gamma)
    slack = 1e-6 * (1 + q_star.abs())
    assert ((low <= q_star + slack) & (q_star <= high + slack)).all()
    # (R4): exact constituents have no residual of their own, so the composite's is -gamma (1 - done) G(s')
    divergence = weighted_divergence(grid, qs, weights, alpha)
    assert torch.allclose(rho, -gamma * grid.next_expectation(divergence), atol=1e-6)
    assert spread["residual_max"] <= 1e-6  # hence hi = 0: the mean is optimistic, as the exact bounds say


@pytest.mark.parametrize("seed", [0, 1])
def test_for_any_q_function_the_residual_interval_holds_and_its_policy_bounds_the_optimum(seed):
    # Random networks are far from any optimum: (R1) to (R3) do not care.
    env = corner(EAST)
    grid, alpha, gamma = GridModel(env, 0.5, 5), 2.0, 0.95
    q = 50 * q_on_grid(_random_q(seed), grid)
    reward = grid.reward()
    solution = grid.solve(reward, alpha, gamma, tol=1e-12)
    rho, low, high, spread = grid_interval(grid, q, reward, alpha, gamma)
    slack = 1e-6 * (1 + solution.q.abs())
    assert ((low <= solution.q + slack) & (solution.q <= high + slack)).all()
    error = solution.q - q  # (R1) exactly: E = rho + gamma (1 - done) alpha log E_pi exp(E / alpha)
    pi = grid.policy(q, alpha)
    soft = alpha * torch.logsumexp(error / alpha + pi.clamp_min(1e-300).log(), -1)
    assert torch.allclose(error, rho + gamma * grid.next_expectation(soft), atol=1e-6 * (1 + error.abs().max()))
    # (R2): the policy's own soft value is the residuals' policy evaluation, and below the optimum
    own = grid.evaluate(reward, pi, gamma, alpha=alpha, tol=1e-12)
    assert torch.allclose(own.q - q, grid.evaluate(rho, pi, gamma, tol=1e-12).q, atol=1e-5 * (1 + own.q.abs().max()))
    assert (own.v <= solution.v + 1e-6).all()
    assert (own.v - grid.soft_value(q, alpha) >= spread["lo"] - 1e-6).all()


@pytest.mark.slow
def test_monte_carlo_soft_return_matches_the_grid_policy_evaluation():
    # (R2) by rollouts: the shipped east skill's own policy on its own task, against the grid's
    # evaluation of the same network (quadrature 11x11, 0.2 spacing: within about 1 of the networks).
    from skillbank.store.registry import Registry

    skill = Registry(REPO / "skills_store").load("corner-east")
    task = skill.description["task"]
    kwargs = dict(task.get("env_kwargs", {}), init_sigma=0.0)
    env = gym.make(task["env_id"], **kwargs).unwrapped
    grid = GridModel(env, 0.2, 11)
    q = q_on_grid(skill.q, grid)
    pi = grid.policy(q, skill.alpha)
    exact = grid.evaluate(grid.reward(env), pi, skill.gamma, alpha=skill.alpha).v[grid.state_index((0.0, 0.0))]
    out = policy_rollouts([skill.q], [1.0], skill.alpha, skill.gamma,
                          lambda h: gym.make(task["env_id"], max_episode_steps=h, **kwargs),
                          skill.to_env_action, episodes=64, particles=512)  # fmt: skip
    assert not out["discount_left"].any()  # every rollout reached a goal
    mean, se = out["soft_return"].mean(), out["soft_return"].std(ddof=1) / 8
    assert abs(mean - float(exact)) < 3 * se + 2.0, (mean, se, float(exact))
    optimum = grid.solve(grid.reward(env), skill.alpha, skill.gamma).v[grid.state_index((0.0, 0.0))]
    assert mean - 3 * se < float(optimum) + 2.0


@pytest.mark.slow
@pytest.mark.shipped
@pytest.mark.parametrize("other", ["corner-north", "corner-west"])
def test_the_certificate_of_the_shipped_learned_composites(other):
    # From the learned skills and their data alone: the interval at the start covers the exact optimum,
    # the interval at the data's transitions covers it at 95% or more of them, and the verdict agrees
    # with what the composites' rollouts do (east + west stalls between its goals: proven to fail).
    from skillbank.composition.bounds import certify, coverage_on_grid
    from skillbank.composition.compose import compose
    from skillbank.store.registry import Registry

    registry = Registry(REPO / "skills_store")
    skills = [registry.load(ref) for ref in ("corner-east", other)]
    composite = compose(skills, "mean")
    replay = registry.replay_union([s.ref for s in skills])
    interval = certify(composite, skills, replay, episodes=32, particles=256)
    env = gym.make(composite.description["task"]["env_id"], **composite.description["task"]["env_kwargs"]).unwrapped
    grid = GridModel(env, 0.2, 11)
    v_star = float(grid.solve(grid.reward(env), composite.alpha, composite.gamma).v[grid.state_index((0.0, 0.0))])
    low, high = interval["optimum_start"]
    assert low - 2.0 <= v_star <= high  # 2: the grid's quadrature against the networks
    assert interval["verdict"]["verdict"] == ("uncertified" if other == "corner-north" else "fails")
    coverage = coverage_on_grid(composite, replay, interval, points=100, rollouts_per_point=2)
    assert coverage["coverage"] >= 0.95
    assert np.isfinite(coverage["mean_width"]) and coverage["mean_width"] > coverage["mean_true_error"]
