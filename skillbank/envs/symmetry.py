"""Symmetries of a task, for replay augmentation: a group of linear maps of observations and actions under which
the task's dynamics, rewards and terminations are unchanged and which fix its start state.

Training on every sampled transition ``(s, a, r, s')`` mapped by a random element ``g`` of the group, as
``(g s, g a, r, g s')`` (``symmetry = "ant-c4"`` in an SQL or SAC configuration), teaches the critic the symmetry
from every transition at once. A soft Q-function that is invariant has an optimal max-ent policy that is too: at the
symmetric start state, ``exp(Q / alpha)`` puts as much mass on each of a heading's images as on the heading itself,
which an SVGD sampler can represent and a single Gaussian cannot.

``ant-c4``: the Ant's body is unchanged by a quarter turn about its own vertical axis that relabels its legs, and
the empty floor of ``ant-walk`` (whose reward is the growth of the distance from the origin) by a quarter turn of
the world about the origin. The two together move a body at the start pose to the start pose and turn any walk
by 90°. In coordinates (Ant-v5's observation without contact forces, then the torso's x, y: 29-D):
the planar pairs (torso quaternion x, y; world velocity x, y; body angular velocity x, y; position x, y) turn by
90°, leg ``i``'s hip and ankle move to leg ``i + 1``, and an ankle changes sign where the legs' ankle axes differ
(legs 1 to 2 and 3 to 4: ``(-1, 1, 0)`` turned is ``-(1, 1, 0)``). Walls break it: it holds in ``ant-walk`` only.
"""

from __future__ import annotations

import numpy as np

from skillbank.errors import ConfigError

# Ant-v5's joints in qpos order: hip_1, ankle_1, hip_2, ankle_2, hip_3, ankle_3, hip_4, ankle_4 (legs at 45°, 135°,
# 225° and 315°); its actuators drive hip_4, ankle_4, hip_1, ankle_1, hip_2, ankle_2, hip_3, ankle_3.
ANT_ACTUATED_JOINTS = (6, 7, 0, 1, 2, 3, 4, 5)
ANT_ANKLE_SIGN = {1: -1.0, 3: 1.0, 5: -1.0, 7: 1.0}  # joint (ankle of leg i) -> sign as the ankle of leg i + 1
ANT_PLANAR_PAIRS = ((2, 3), (13, 14), (16, 17), (27, 28))  # quaternion x, y; velocity; angular velocity; x, y
ANT_JOINTS, ANT_JOINT_VELOCITIES = 5, 19  # where the 8 joint angles and the 8 joint velocities start
ANT_WALK = "skillbank/AntWalk-v0"


def _joint_map() -> np.ndarray:
    """The quarter turn on the 8 joints (qpos order): leg i's hip and ankle to leg i + 1's, ankles signed."""
    turn = np.zeros((8, 8))
    for joint in range(8):
        turn[(joint + 2) % 8, joint] = ANT_ANKLE_SIGN.get(joint, 1.0)
    return turn


def ant_quarter_turn() -> tuple[np.ndarray, np.ndarray]:
    """The matrices of ``ant-c4``'s generator, a 90° turn: on the 29-D observation and on the 8 actions."""
    obs = np.eye(29)
    for x, y in ANT_PLANAR_PAIRS:  # (x, y) -> (-y, x)
        obs[np.ix_([x, y], [x, y])] = [[0.0, -1.0], [1.0, 0.0]]
    joints = _joint_map()
    for start in (ANT_JOINTS, ANT_JOINT_VELOCITIES):
        obs[start : start + 8, start : start + 8] = joints
    order = list(ANT_ACTUATED_JOINTS)
    return obs, joints[np.ix_(order, order)]


def ant_quarter_turn_frames() -> tuple[np.ndarray, np.ndarray]:
    """For each quarter turn k (0 to 3), the maps into a frame turned by k (observations turned by -k) and back out
    of it (actions turned by k): arrays (4, 29, 29) and (4, 8, 8), as the canonical walk sees and acts."""
    obs, actions = ant_quarter_turn()
    into = np.stack([np.linalg.matrix_power(obs, (4 - k) % 4) for k in range(4)])
    return into, np.stack([np.linalg.matrix_power(actions, k) for k in range(4)])


GROUPS = {"ant-c4": (ant_quarter_turn, 4, (ANT_WALK,))}  # name: (generator, order, environments where it holds)


def check_symmetry(name: str, env_id: str | None, obs_dim: int, act_dim: int) -> None:
    """Refuse a symmetry (a name the configuration checked) that does not hold in the environment ``env_id``."""
    if name == "none":
        return
    generator, _, holds_in = GROUPS[name]
    obs, actions = generator()
    if env_id not in holds_in or (obs_dim, act_dim) != (len(obs), len(actions)):
        raise ConfigError(
            f"symmetry {name!r} holds in {', '.join(holds_in)} only (walls or other bodies break it), not in "
            f'{env_id} with {obs_dim}-D observations and {act_dim}-D actions; set symmetry = "none"'
        )
