"""Train a model: `python train.py --config-name exp/life16 train.steps=2000` (Hydra overrides).

Multi-process: `torchrun --standalone --nproc_per_node=N train.py --config-name exp/life32`.
"""

import hydra
from omegaconf import DictConfig

from interfere.cli import exit_on_user_error
from interfere.train.loop import train


@hydra.main(config_path="cfg", config_name="exp/cpu_demo", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        train(cfg)


if __name__ == "__main__":
    main()
