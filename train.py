"""Train a model: `python train.py --config-name exp/life16 train.steps=2000` (Hydra overrides).

Multi-process: `torchrun --standalone --nproc_per_node=N train.py --config-name exp/life32`.
"""

from interfere.openmp import choose_wait_policy  # imports no torch: OpenMP reads its settings when torch loads it

OPENMP = choose_wait_policy()

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from interfere.cli import exit_on_user_error  # noqa: E402
from interfere.train.loop import train  # noqa: E402


@hydra.main(config_path="cfg", config_name="exp/cpu_demo", version_base="1.3")
def main(cfg: DictConfig) -> None:
    print(f"openmp: {OPENMP} (interfere.openmp)")
    with exit_on_user_error():
        train(cfg)


if __name__ == "__main__":
    main()
