"""The exact grid solver and the composition bounds, checked against closed forms and each other."""

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from skillbank.composition.grid_bounds import composition_bounds, verdict, weighted_divergence
from skillbank.composition.oracle import GridModel, OraclePolicy
from skillbank.envs.multigoal import MultiGoalEnv
from skillbank.runs.tasks import load_task

REPO = Path(__file__).resolve().parents[2]

CORNERS = [[5, 5], [5, -5], [-5, 5], [-5, -5]]
EAST, NORTH, WEST = [1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 1, 1]


def corner(weights, task_weights=None) -> MultiGoalEnv:
    return MultiGoalEnv(goals=CORNERS, goal_weights=weights, task_weights=task_weights)


def test_soft_value_iteration_matches_the_closed_form_and_converges_at_second_order():
    # No reachable goal and no distance cost: Q = -30 |a|^2 + gamma V with V constant, so
    # V = alpha log Z / (1 - gamma), Z = (sqrt(pi alpha / 30) erf(sqrt(30 / alpha)))^2.
    env = MultiGoalEnv(goals=[[100, 100]], goal_reward=0.0, distance_cost=0.0)
    alpha, gamma = 10.0, 0.9
    exact = alpha * math.log((math.sqrt(math.pi * alpha / 30) * math.erf(math.sqrt(30 / alpha))) ** 2) / (1 - gamma)
    errors = []
    for points in (5, 9, 17):
        grid = GridModel(env, spacing=1.0, action_points=points)
        solution = grid.solve(grid.reward(), alpha, gamma, tol=1e-12)
        assert solution.v.max() - solution.v.min() < 1e-9  # state-independent, as it must be
        errors.append(abs(solution.v.mean().item() - exact))
    assert errors[2] < errors[1] < errors[0]
    assert 3.0 < errors[0] / errors[1] < 5.0 and 3.0 < errors[1] / errors[2] < 5.0  # trapezoid: O(h^2)


def test_solution_converges_as_the_grid_is_refined():
    values = []
    for spacing, points in ((1.0, 3), (0.5, 5), (0.25, 9)):
        grid = GridModel(corner(EAST), spacing, points)
        solution = grid.solve(grid.reward(), 10.0, 0.99)
        coarse = np.array([[x, y] for x in range(-7, 8) for y in range(-7, 8)], float)
        values.append(grid.interpolate(solution.v, coarse))
    first, second = (values[0] - values[2]).abs().max(), (values[1] - values[2]).abs().max()
    assert second < 0.5 * first


def test_solution_is_a_fixed_point_and_the_policy_is_soft_optimal():
    grid = GridModel(corner(EAST), 0.5, 5)
    reward = grid.reward()
    solution = grid.solve(reward, 1.0, 0.99, tol=1e-12)
    backup = reward + 0.99 * grid.next_expectation(grid.soft_value(solution.q, 1.0))
    assert torch.allclose(backup, solution.q, atol=1e-8)
    # The Boltzmann policy of Q* evaluated with its entropy bonus gives back Q*; a sharper one less.
    policy = grid.policy(solution.q, 1.0)
    assert torch.allclose(grid.evaluate(reward, policy, 0.99, alpha=1.0, tol=1e-12).q, solution.q, atol=1e-6)
    sharper = grid.policy(solution.q, 0.5)
    assert (grid.evaluate(reward, sharper, 0.99, alpha=1.0).v <= solution.v + 1e-6).all()


def test_one_step_identity_and_exact_gap_recursion():
    grid = GridModel(corner(EAST), 0.5, 5)
    alpha, gamma, weights = 1.0, 0.99, [0.3, 0.7]
    q1, q2 = (grid.solve(grid.reward(corner(w)), alpha, gamma, tol=1e-12).q for w in (EAST, NORTH))
    q_sigma = 0.3 * q1 + 0.7 * q2
    g = weighted_divergence(grid, [q1, q2], weights, alpha)
    v = lambda q: grid.soft_value(q, alpha)  # noqa: E731
    assert torch.allclose(v(q_sigma), 0.3 * v(q1) + 0.7 * v(q2) - g, atol=1e-9)  # V_Sigma = sum w V_k - G
    assert (g >= -1e-12).all()  # Hölder
    q_star = grid.solve(grid.reward(corner([EAST, NORTH], weights)), alpha, gamma, tol=1e-12).q
    delta = q_sigma - q_star
    recursion = gamma * grid.next_expectation(g + v(q_sigma) - v(q_star))
    assert torch.allclose(delta, recursion, atol=1e-7)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 4.0])
def test_oracle_bounds_hold_at_every_grid_point(alpha):
    grid = GridModel(corner(EAST), 0.5, 5)
    qs = [grid.solve(grid.reward(corner(w)), alpha, 0.99).q for w in (EAST, NORTH)]
    bounds = composition_bounds(grid, qs, alpha, 0.99, combined_reward=grid.reward(corner([EAST, NORTH])))
    error, slack = bounds.true_error, 1e-4 * (1 + bounds.q_star.abs())
    assert (bounds.lower <= error + slack).all()  # L1 <= Q_Sigma - Q*_C
    assert (error <= bounds.c_pi + slack).all()  # <= C_pi
    assert (bounds.c_pi <= bounds.c_star + slack).all()  # <= C* (tight) <= C* (paper)
    assert (bounds.c_star <= bounds.c_star_paper + slack).all()
    assert (error >= -slack).all()  # Q_Sigma >= Q*_C >= Q_Sigma - C*
    assert (bounds.policy_gap <= bounds.d_star + slack).all()  # Q^{pi_Sigma} >= Q*_C - D*
    summary = bounds.summary(grid)
    assert summary["paper_bound_violation_fraction"] == 0 and summary["sandwich_violation_fraction"] == 0
    assert summary["C_star_paper_tightness"] < 0.01  # the paper's bound is orders of magnitude looser


@pytest.mark.slow
@pytest.mark.parametrize(("alpha", "spacing", "points"), [(10.0, 0.5, 5), (4.0, 0.5, 5), (1.0, 0.25, 9)])
def test_c_pi_is_tight_on_east_north(alpha, spacing, points):
    # Sharp policies (small alpha) need a finer action grid to be resolved at all.
    grid = GridModel(corner(EAST), spacing, points)
    qs = [grid.solve(grid.reward(corner(w)), alpha, 0.99).q for w in (EAST, NORTH)]
    bounds = composition_bounds(grid, qs, alpha, 0.99, combined_reward=grid.reward(corner([EAST, NORTH])))
    assert bounds.summary(grid)["C_pi_tightness"] >= 0.4


def test_bounds_for_three_weighted_skills():
    grid = GridModel(corner(EAST), 0.5, 5)
    tasks, weights = [EAST, NORTH, WEST], [0.5, 0.3, 0.2]
    qs = [grid.solve(grid.reward(corner(w)), 1.0, 0.99).q for w in tasks]
    bounds = composition_bounds(grid, qs, 1.0, 0.99, weights, grid.reward(corner(tasks, weights)))
    slack = 1e-4 * (1 + bounds.q_star.abs())
    assert (bounds.lower <= bounds.true_error + slack).all() and (bounds.true_error <= bounds.c_pi + slack).all()


def test_verdict_accepts_east_north_and_flags_east_west():
    grid = GridModel(corner(EAST), 0.5, 5)
    verdicts = {}
    for name, pair in (("north", NORTH), ("west", WEST)):
        qs = [grid.solve(grid.reward(corner(w)), 10.0, 0.99).q for w in (EAST, pair)]
        bounds = composition_bounds(grid, qs, 10.0, 0.99)
        verdicts[name] = verdict(bounds.summary(grid))
    assert verdicts["north"]["verdict"] == "trustworthy"
    assert verdicts["west"]["verdict"] == "untrustworthy" and "--op or" in verdicts["west"]["advice"]


def test_oracle_policy_reaches_the_shared_goal():
    env = load_task("corner-east-north").make_env()
    grid = GridModel(env, 0.5, 5)
    policy = OraclePolicy(grid, grid.solve(grid.reward(), 10.0, 0.99).q, 10.0)
    generator = torch.Generator().manual_seed(0)
    ends = []
    for episode in range(10):
        obs, _ = env.reset(seed=episode)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy.act(obs, generator))
            done = terminated or truncated
        ends.append(info["goal"])
    assert ends.count(0) >= 8  # goal 0 is (5, 5)


# ----- the sample-based estimator (any task) ------------------------------------------------------
def _random_transitions(n: int = 400, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.rand(n, 2, generator=g) * 14 - 7
    actions = torch.rand(n, 2, generator=g) * 2 - 1
    return obs, actions, (obs + actions).clamp(-7, 7), (torch.rand(n, generator=g) < 0.05).float()


def _random_q(seed: int):
    from skillbank.nn.networks import SoftQ

    torch.manual_seed(seed)
    return SoftQ(2, 2, [16, 16])


def test_sampled_divergence_is_never_negative_and_zero_for_identical_skills():
    from skillbank.composition.certified import soft_values

    states = torch.rand(300, 2) * 14 - 7
    g = torch.Generator().manual_seed(0)
    different = soft_values([_random_q(0), _random_q(1)], [0.3, 0.7], 0.5, states, 16, g)
    assert (different["divergence"] >= -1e-9).all()  # Hölder holds for every draw of shared particles
    assert different["divergence"].mean() > 1e-3
    same = soft_values([_random_q(0), _random_q(0)], [0.5, 0.5], 0.5, states, 16, g)
    assert same["divergence"].abs().max() < 1e-9
    torch.testing.assert_close(same["policy"].sum(-1), torch.ones(300))


def _point_mass(horizon: int):
    # The transitions above are MultiGoal's: a unit-action point mass in [-7, 7]^2 (its goal out of reach).
    return gym.make("skillbank/MultiGoal-v0", goals=[[50.0, 50.0]], max_episode_steps=horizon)


@pytest.mark.slow
def test_sample_bounds_vanish_for_identical_skills_and_report_their_spread():
    from skillbank.composition.sampled_bounds import sample_bounds, sample_verdict

    kwargs = dict(fits=2, steps=400, batch_size=64, particles=16, episodes=8, rollout_particles=32, horizon=20)
    same = sample_bounds([_random_q(0), _random_q(0)], None, 1.0, 0.9, _random_transitions(), _point_mass, **kwargs)
    for name in ("L1", "C_pi"):  # rollouts of identical skills: G is exactly 0 at every state
        assert abs(same[f"{name}_start"]) < 1e-9, (name, same[f"{name}_start"])
        assert abs(same[f"{name}_start_fit"]) < 0.1  # (the max in C* and D* is biased upward by the fit's noise)
    assert same["estimator"]["fits"] == 2 and same["C_star_start_std"] is not None
    assert same["rollouts"]["episodes"] == 8 and same["rollouts"]["unfinished_fraction"] == 1.0
    # A low temperature makes the two random skills' policies differ sharply.
    different = sample_bounds(
        [_random_q(0), _random_q(1)], None, 0.02, 0.9, _random_transitions(), _point_mass, **kwargs
    )
    assert different["divergence_start"] > 1e-4  # (identical skills: exactly 0)
    assert different["L1_mean"] > 10 * abs(same["L1_mean"])
    assert 0 < different["L1_start"] < different["C_pi_start"]
    assert different["C_pi_start_std"] > 0
    cautious = sample_verdict(different, tolerance=0.0)
    assert cautious["verdict"] == "untrustworthy"
    assert cautious["error_at_most"] >= different["C_pi_start"]
    assert sample_verdict(same, tolerance=1.0)["verdict"] == "trustworthy"


@pytest.mark.slow
@pytest.mark.shipped
@pytest.mark.parametrize("other", ["corner-north", "corner-west"])
def test_rollout_bounds_agree_with_the_exact_grid_for_the_shipped_skills(other):
    # The learned east skill with north (the composite works) and with west (it fails): the Monte Carlo
    # L1 and C_pi at the origin must match the grid's quadrature of the same networks.
    from skillbank.composition.compose import combined_task
    from skillbank.composition.grid_bounds import composition_bounds, q_on_grid
    from skillbank.composition.oracle import GridModel
    from skillbank.composition.sampled_bounds import rollout_bounds
    from skillbank.store.registry import Registry

    skills = [Registry(REPO / "skills_store").load(ref) for ref in ("corner-east", other)]
    task = combined_task(skills, "mean", [0.5, 0.5])
    kwargs = dict(task["env_kwargs"], init_sigma=0.0)
    alpha, gamma = skills[0].alpha, skills[0].gamma
    grid = GridModel(gym.make(task["env_id"], **kwargs).unwrapped, 0.2, 11)
    exact = composition_bounds(grid, [q_on_grid(s.q, grid) for s in skills], alpha, gamma).summary(grid)
    fails = other == "corner-west"  # the failing composite never ends: cut it short
    horizon = 100 if fails else None
    mc = rollout_bounds(
        [s.q for s in skills], None, alpha, gamma,
        lambda h: gym.make(task["env_id"], max_episode_steps=h, **kwargs), skills[0].to_env_action,
        episodes=32 if fails else 64, particles=256 if fails else 512, horizon=horizon,
    )  # fmt: skip
    # The grid's 11x11 action quadrature and 0.2 state spacing differ from the networks by about 0.2 in G.
    assert abs(mc["L1_start"] - exact["L1_start"]) < 3 * mc["L1_start_se"] + 0.5, (mc, exact["L1_start"])
    if other == "corner-north":
        assert abs(mc["C_pi_start"] - exact["C_pi_start"]) < 3 * mc["C_pi_start_se"] + 0.5
        assert mc["unfinished_fraction"] == 0.0
    else:  # 100 of the infinite steps: about the grid's value times (1 - gamma^100)
        truncated = exact["C_pi_start"] * (1 - gamma**100)
        assert abs(mc["C_pi_start"] - truncated) < 3 * mc["C_pi_start_se"] + 0.02 * truncated
    # The start states (where sample_bounds reads its fitted maps) are where the rollouts began, not ended
    assert torch.all(mc["start_states"].abs() <= 1e-6)  # init_sigma 0: every episode starts at the origin
