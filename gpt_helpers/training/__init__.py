"""Part 2, notebook 08: datasets, the loss, a training loop, saving models, and the Zen of Python run."""

from .loop import (
    CONFIG_METADATA_KEY,
    TokenWindowDataset,
    calc_loss_batch,
    calc_loss_loader,
    create_dataloader,
    load_model,
    save_model,
    train_model,
)
from .zen import (
    ZEN_CONFIG,
    ZenRun,
    train_zen_model,
    zen_of_python,
)

__all__ = [
    "CONFIG_METADATA_KEY",
    "TokenWindowDataset",
    "create_dataloader",
    "calc_loss_batch",
    "calc_loss_loader",
    "train_model",
    "save_model",
    "load_model",
    "ZEN_CONFIG",
    "ZenRun",
    "zen_of_python",
    "train_zen_model",
]
