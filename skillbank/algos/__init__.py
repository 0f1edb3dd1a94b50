"""The learning algorithms: the off-policy loop shared by all (``offpolicy``), SQL, SAC and DDPG, their
objectives (``losses``, each named after its equation), configurations, the replay buffer and its augmentation."""
