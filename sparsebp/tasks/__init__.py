"""The tasks of the paper, one module each, behind one small interface.

A task module defines:

    NAME, HELP, DATA_HELP  its name on the command line, one line of help, what --data takes
    DEFAULTS               Config fields it sets differently (dict)
    PAPER                  (optional) Config fields that `--paper` restores to the paper's
                           setting where DEFAULTS depart from it (dict)
    ARGUMENTS              its own flags: [(flag, argparse kwargs)], kept in Config.extra
    validate(cfg)          -> list of error messages for bad settings
    load(cfg)              -> its data (train, dev and test splits)
    describe(data)         -> one line: the sizes of the splits
    n_train(data)          -> how many training units an epoch visits (examples, sentences, ...)
    batch(data, ids)       -> (inputs, targets): the model's input for training units `ids`,
                              and (N,) int labels of the N outputs it scores
    epoch_order(data, order) (optional) -> the epoch's order (a permutation of the
                              units) as batch() takes slices of it (mnist: on the GPU)
    build_model(cfg, data) -> a Module: model(inputs) is (N, C) logits
    evaluate(model, data, split) -> {"acc": ..., other metrics}: split "dev" or "test"
    small_config(cfg)      -> a tiny Config of the same kind (to compile the kernels first)

The training loop (`sparsebp/train.py`) knows nothing else of a task.
"""
import importlib

TASKS = ("mnist", "parse", "pos")


def get(name):
    """The task module for `name`."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return importlib.import_module(f"{__name__}.{name}")


def extra(cfg, name, default):
    """A task's own flag from cfg.extra; `default` when a Config built in Python lacks it."""
    value = cfg.extra.get(name)
    return default if value is None else value


def best_dev_so_far(data, split, score):
    """--predict's rule (parse, pos: they write the output of the best dev epoch):
    after scoring dev, record whether `score` is the best dev score so far in
    data.best_dev and data.dev_is_best (train.run restores best_dev on --resume);
    returns whether this epoch's output, dev's or test's after it, is the best's."""
    if split == "dev":
        data.dev_is_best, data.best_dev = score > data.best_dev, max(data.best_dev, score)
    return data.dev_is_best


def mlp_errors(cfg):
    """The checks every task with a meProp MLP of cfg.hidden units makes (mnist, parse)."""
    errors = []
    if cfg.mode != "dense" and not 1 <= cfg.k <= cfg.hidden:
        errors.append(f"--k must be in [1, --hidden = {cfg.hidden}] (got {cfg.k})")
    if cfg.activation not in ("relu", "tanh", "cube"):
        errors.append(f"--activation must be relu, tanh or cube (got {cfg.activation})")
    return errors
