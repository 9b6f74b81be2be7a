"""Multi-process training on RecBole's own DDP path, on CPUs (gloo) as well as GPUs (NCCL).

RecBole 1.2.1 hard-codes NCCL and CUDA devices: ``Config._init_device`` calls
``init_process_group(backend="nccl")`` and sets a CUDA device per rank, and ``AbstractTrainer``
wraps the model in ``SyncBatchNorm`` (CUDA only) and ``DistributedDataParallel(device_ids=[rank])``.
On a machine without CUDA, this module takes the same path with the gloo backend:

* :func:`init_process_group` (called by :class:`recbole_dien.Config` for a rank of a multi-process
  run when torch sees no CUDA): gloo, RecBole's ``ip`` / ``port`` / ``world_size`` / ``offset``
  as RecBole documents them, the CPU device, ``torch.set_num_threads(cores // nproc)`` so that the
  processes of one machine do not oversubscribe its cores, and RecBole's quiet non-zero ranks.
* :func:`trainer_init` (replaces ``AbstractTrainer.__init__`` through :mod:`recbole_dien.compat`):
  on the CPU, ``DistributedDataParallel`` without device ids and without ``SyncBatchNorm``
  (BatchNorm statistics are per rank; DDP broadcasts rank 0's running statistics every step).
* Evaluation covers every row once, as one process would: every rank scores with rank 0's model (:func:`evaluate_with_rank0_buffers`),
  :func:`shard_evaluation` gives each rank a contiguous slice of the
  evaluation rows (RecBole's ``DistributedSampler`` pads with repeated rows), the collected
  scores are gathered across ranks in rank order (:func:`gather_data_struct`), and every rank
  computes the metrics on all of them, as one process would (``Trainer._map_reduce``, which averages
  per-rank metrics, AUC included, is then not needed). Where the protocol samples candidates
  (uni100), each rank draws its own, so the metrics equal one process's in distribution, not to the
  digit; full-sort and labeled evaluation are exact.

Each rank trains on its own shard of the training rows (RecBole's ``DistributedSampler``).
"""
import os

import torch

# the evaluation keys holding one entry per evaluated row, concatenated along dim 0 (data.user:
# the users of LabeledGAUC, recbole_dien.evaluator.metrics)
PER_ROW_KEYS = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label", "data.user")


def is_distributed(config):
    return not config["single_spec"]


def init_process_group(final_config_dict):
    """Join a gloo process group for a CPU rank; the settings a CPU rank runs with."""
    final = final_config_dict
    torch.distributed.init_process_group(
        backend="gloo", rank=final["local_rank"] + final["offset"], world_size=final["world_size"],
        init_method=f"tcp://{final['ip']}:{final['port']}")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, final["nproc"])))
    final.update(device=torch.device("cpu"), single_spec=False)
    if final["local_rank"] != 0:
        final.update(state="error", show_progress=False, verbose=False)


def trainer_init(original):
    """``AbstractTrainer.__init__`` that, on the CPU, wraps the model in a device-less DDP."""
    def __init__(self, config, model):
        if not is_distributed(config) or config["device"].type == "cuda":
            return original(self, config, model)
        from torch.nn.parallel import DistributedDataParallel

        self.config, self.model = config, model
        self.distributed_model = DistributedDataParallel(model)

    return __init__


def shard_evaluation(config, loader):
    """The evaluation loader for this rank's contiguous slice of ``loader``'s rows (rank order
    is row order), without RecBole's padding ``DistributedSampler``."""
    if not is_distributed(config):
        return loader
    from recbole_dien.utils.errors import ConfigError

    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    dataset = loader._dataset
    rows = len(dataset)
    if rows < world:  # a rank without rows would skip the gather the others wait in
        raise ConfigError(f"{rows} evaluation rows cannot be shared by {world} processes: use fewer processes")
    shard = dataset.copy(dataset.inter_feat[rank * rows // world:(rank + 1) * rows // world])
    config["single_spec"] = True  # a plain sampler over this rank's rows
    try:
        return type(loader)(config, shard, loader._sampler, shuffle=False)
    finally:
        config["single_spec"] = False


def gather_data_struct(get_data_struct):
    """``Collector.get_data_struct`` that, in a distributed run, concatenates every rank's
    per-row evaluation data in rank order, so that each rank evaluates all rows."""
    def wrapper(self):
        struct = get_data_struct(self)
        if not is_distributed(self.config) or not torch.distributed.is_initialized():
            return struct
        mine = {key: struct[key] for key in PER_ROW_KEYS if key in struct}
        every = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(every, mine)
        for key in mine:
            struct.set(key, torch.cat([part[key] for part in every], dim=0))
        return struct

    return wrapper


def evaluate_with_rank0_buffers(evaluate):
    """``Trainer.evaluate`` that first gives every rank rank 0's buffers (BatchNorm running
    statistics, which each rank updates on its own shard after DDP's last broadcast), so that
    every rank scores with the model rank 0 checkpoints."""
    def wrapper(self, *args, **kwargs):
        if is_distributed(self.config) and torch.distributed.is_initialized():
            for buffer in self.model.buffers():
                torch.distributed.broadcast(buffer, src=0)
        return evaluate(self, *args, **kwargs)

    return wrapper


def keep_metrics(self, result, num_sample):
    """``Trainer._map_reduce``: the metrics are already those of all rows (see the module docstring)."""
    return result
