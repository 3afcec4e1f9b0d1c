"""``pettingzoo:tests.box_env``: the BoxActions toy env as a module with ``parallel_env``, so
that training runs can evaluate in it by env id."""

from .toy_envs import BoxActions


def parallel_env(**kwargs):
    return BoxActions(**kwargs)
