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

Across machines no shared filesystem is assumed and no peer is waited for in silence:

* :func:`join` is the rendezvous (a ``TCPStore`` on rank 0's ``ip:port``): rank 0 reports which
  ranks it still waits for, and stops with one :class:`DistributedError` line naming them and the
  address after ``ddp_timeout`` seconds (default :data:`DEFAULT_TIMEOUT_S`); another rank waits for
  rank 0's address the same way (a plain socket, so torch's C++ retry log stays quiet).
* Only global rank 0 (``local_rank + offset``) writes the checkpoint; the test pass takes the best
  weights from rank 0 over the group (:func:`take_best_model_from_rank0`), not from its file.
* A peer that dies mid-run is one line naming the rank (:func:`lost_peer`); the run resumes from
  rank 0's checkpoint. gloo's error names no rank, so every CPU rank counts up its own key in the
  run's store from a thread (:func:`start_heartbeat`); a survivor names the peers whose count
  stands still (:func:`silent_peers`), or rank 0 when the store (rank 0's process) is gone. So that
  a survivor that only learns of the loss when rank 0 leaves does not take rank 0 for the dead one,
  rank 0 leaves the group and keeps the store up until the others have reported (:func:`lost_peer`).
"""
import datetime
import logging
import os
import re
import socket
import threading
import time

import torch

from recbole_dien.utils.errors import RecBoleDienError

# seconds to wait for every rank to join (ddp_timeout); collectives wait at least COLLECTIVE_TIMEOUT_S
DEFAULT_TIMEOUT_S = 300.0
COLLECTIVE_TIMEOUT_S = 1800.0
WAIT_REPORT_S = 10.0  # how often a waiting rank says what it waits for
_JOINED_KEY = "recbole_dien/joined/{}"
_CHECKPOINT_KEY = "recbole_dien/checkpoint"
_BEAT_KEY = "recbole_dien/beat/{}"
_LEFT_KEY = "recbole_dien/left/{}"  # a survivor that reported a loss and stops beating on purpose
HEARTBEAT_S = 0.5
HANDOVER_S = 20.0  # how long rank 0 keeps the store up for the other survivors to name the dead
_joined = {}  # (ip, port, rank) -> the store join() made, for init_process_group to use
_group_store = {}  # global rank -> the store of its process group


class DistributedError(RecBoleDienError):
    """A multi-process run that cannot start or go on: a missing or dead peer, an address in use."""


# the evaluation keys holding one entry per evaluated row, concatenated along dim 0 (data.user:
# the users of LabeledGAUC, recbole_dien.evaluator.metrics)
PER_ROW_KEYS = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label", "data.user")


def is_distributed(config):
    return not config["single_spec"]


def _setting(final, key):
    return final[key] if key in final else None


def global_rank(final):
    """The rank in the whole run (RecBole's ``local_rank`` counts the processes of one machine)."""
    return final["local_rank"] + (_setting(final, "offset") or 0)


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _wait_for_address(rank, ip, port, timeout, log):
    """Wait until rank 0 listens on ``ip:port`` (a plain TCP connection), saying so every
    :data:`WAIT_REPORT_S` seconds; one line after ``timeout`` seconds."""
    started = reported = time.monotonic()
    while True:
        try:
            with socket.create_connection((ip, port), timeout=min(5.0, timeout)):
                return
        except OSError as error:
            reason = error.strerror or type(error).__name__
        now = time.monotonic()
        if now - started >= timeout:
            raise DistributedError(f"rank {rank} could not reach rank 0 at {ip}:{port} within "
                                   f"ddp_timeout={timeout:g} s ({reason}): start rank 0's run (--group_offset=0) "
                                   "there, or check --ip and --port")
        if now - reported >= WAIT_REPORT_S:
            log(f"rank {rank}: waiting for rank 0 at {ip}:{port} ({now - started:.0f} s of ddp_timeout={timeout:g} s)")
            reported = now
        time.sleep(0.5)


def _wait_for_ranks(store, world_size, address, timeout, log):
    """Rank 0: wait until every rank has joined the store, naming those it waits for."""
    started = reported = time.monotonic()
    while True:
        missing = [rank for rank in range(1, world_size) if not store.check([_JOINED_KEY.format(rank)])]
        if not missing:
            return
        now = time.monotonic()
        ranks = ", ".join(map(str, missing))
        plural = len(missing) > 1
        if now - started >= timeout:
            raise DistributedError(
                f"rank{'s' if plural else ''} {ranks} of {world_size} never joined the run at {address} within "
                f"ddp_timeout={timeout:g} s: start {'them' if plural else 'it'} with the same --ip, --port and "
                "--world_size (and its --group_offset), or raise --ddp_timeout")
        if now - reported >= WAIT_REPORT_S:
            log(f"rank 0: waiting for rank{'s' if plural else ''} {ranks} at {address} "
                f"({now - started:.0f} s of ddp_timeout={timeout:g} s)")
            reported = now
        time.sleep(0.2)


def join(final, log=None):
    """The run's rendezvous store, once every rank has joined it (see the module docstring)."""
    log = log or logging.getLogger("recbole_dien").warning
    rank, world_size = global_rank(final), final["world_size"]
    ip, port = final["ip"], int(final["port"])
    timeout = float(_setting(final, "ddp_timeout") or DEFAULT_TIMEOUT_S)
    address = f"{ip}:{port}"
    if rank != 0:
        _wait_for_address(rank, ip, port, timeout, log)
    try:
        store = torch.distributed.TCPStore(ip, port, world_size, is_master=rank == 0,
                                           timeout=datetime.timedelta(seconds=timeout), wait_for_workers=False)
    except RuntimeError as error:
        if rank == 0:
            raise DistributedError(f"rank 0 cannot listen on {address} ({_first_line(error)}): another run may use "
                                   "the port; choose one with --port") from None
        raise DistributedError(f"rank {rank} could not join rank 0 at {address} ({_first_line(error)})") from None
    store.set(_JOINED_KEY.format(rank), "1")
    if rank == 0:
        _wait_for_ranks(store, world_size, address, timeout, log)
    _joined[(ip, port, rank)] = store
    return store


def shared_checkpoint(final, path, load_checkpoint):
    """A resumed multi-process run's checkpoint for this rank: rank 0 reads its file and puts its
    bytes in the run's store; another rank reads the file where it has one (the same machine, a
    shared folder), else takes rank 0's bytes - both read by ``load_checkpoint`` (plain data only)."""
    import tempfile

    store = join(final)
    if global_rank(final) == 0:
        checkpoint = load_checkpoint(path)
        with open(path, "rb") as f:
            store.set(_CHECKPOINT_KEY, f.read())
        return checkpoint
    if os.path.isfile(path):
        return load_checkpoint(path)
    with tempfile.TemporaryDirectory(prefix="recbole-dien-resume-") as folder:
        copy = os.path.join(folder, os.path.basename(path))
        with open(copy, "wb") as f:
            f.write(store.get(_CHECKPOINT_KEY))
        return load_checkpoint(copy)


def _store_client(final, timeout=10.0):
    return torch.distributed.TCPStore(final["ip"], int(final["port"]), is_master=False,
                                      timeout=datetime.timedelta(seconds=timeout), wait_for_workers=False)


def start_heartbeat(final):
    """Count up this rank's key in the run's store every :data:`HEARTBEAT_S` seconds, from a daemon
    thread on a store connection of its own (the count goes on while the rank waits in gloo, which
    releases the GIL); it stops when the store is gone."""
    client, key = _store_client(final), _BEAT_KEY.format(global_rank(final))

    def beat():
        while True:
            try:
                client.add(key, 1)
            except Exception:  # rank 0's process, which holds the store, has ended
                return
            time.sleep(HEARTBEAT_S)

    threading.Thread(target=beat, name="recbole-dien-heartbeat", daemon=True).start()


def silent_peers(final, watch_s=4 * HEARTBEAT_S):
    """The other ranks whose heartbeat stood still for ``watch_s`` seconds (survivors that already
    reported the loss excluded): the dead ones; ``[0]`` if the store cannot be reached (it lives in
    rank 0's process); ``[]`` if every peer still beats or none ever did."""
    rank, world = global_rank(final), final["world_size"]
    peers = [peer for peer in range(world) if peer != rank]
    try:
        client = _store_client(final, timeout=2.0)
        before = {peer: client.add(_BEAT_KEY.format(peer), 0) for peer in peers}
        time.sleep(watch_s)
        after = {peer: client.add(_BEAT_KEY.format(peer), 0) for peer in peers}
        left = {peer for peer in peers if client.check([_LEFT_KEY.format(peer)])}
        client.set(_LEFT_KEY.format(rank), "1")
    except Exception:  # the store is gone with rank 0
        return [0] if rank != 0 else []
    return [peer for peer in peers if after[peer] == before[peer] and before[peer] > 0 and peer not in left]


def init_process_group(final_config_dict):
    """Join a gloo process group for a CPU rank; the settings a CPU rank runs with."""
    final = final_config_dict
    store = _joined.pop((final["ip"], int(final["port"]), global_rank(final)), None) or join(final)
    timeout = max(float(_setting(final, "ddp_timeout") or DEFAULT_TIMEOUT_S), COLLECTIVE_TIMEOUT_S)
    try:
        torch.distributed.init_process_group(backend="gloo", store=store, rank=global_rank(final),
                                             world_size=final["world_size"],
                                             timeout=datetime.timedelta(seconds=timeout))
    except RuntimeError as error:
        raise DistributedError(f"rank {global_rank(final)}: the process group at {final['ip']}:{final['port']} did "
                               f"not form ({_first_line(error)})") from None
    _group_store[global_rank(final)] = store  # rank 0's store outlives the group (lost_peer)
    start_heartbeat(final)
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


def take_best_model_from_rank0(trainer):
    """Every rank's model becomes rank 0's best epoch (weights and buffers, over the group): rank 0
    loads it from memory, the others need no access to its checkpoint file."""
    model = trainer.model
    if global_rank(trainer.config) == 0:
        best = getattr(trainer, "recbole_dien_best", None)
        if best is not None:
            model.load_state_dict(best["state_dict"])
            model.load_other_parameter(best.get("other_parameter") or None)
    for tensor in list(model.parameters()) + list(model.buffers()):
        torch.distributed.broadcast(tensor.data, src=0)


def _wait_for_survivors(final, dead, wait_s=None):
    """Rank 0 after a loss: leave the process group (a rank waiting on rank 0 in gloo learns of the
    loss only then) and keep the store, which lives in this process, up until every other survivor
    has named the dead in :func:`silent_peers`, or :data:`HANDOVER_S` seconds have passed."""
    wait_s = HANDOVER_S if wait_s is None else wait_s
    store = _group_store.get(0)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if store is None:
        return
    survivors = [peer for peer in range(1, final["world_size"]) if peer not in dead]
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if all(store.check([_LEFT_KEY.format(peer)]) for peer in survivors):
                return
        except Exception:  # the store is already closing: nothing to wait for
            return
        time.sleep(HEARTBEAT_S / 5)


def lost_peer(final, error, checkpoint=None):
    """One line for a rank whose peer left the group mid-run (gloo: connection closed or reset),
    naming the peer (:func:`silent_peers`)."""
    rank, world_size = global_rank(final), final["world_size"]
    dead = [1 - rank] if world_size == 2 else silent_peers(final)
    if rank == 0 and world_size > 2:
        _wait_for_survivors(final, dead)
    peer = f"rank{'s' if len(dead) > 1 else ''} {', '.join(map(str, dead))}" if dead else "a peer"
    if rank != 0:
        resume = "; rank 0's checkpoint resumes it (--resume on every machine, the same --nproc / --world_size)"
    elif checkpoint:
        resume = (f"; rank 0's checkpoint {checkpoint} resumes it with --resume={checkpoint} and the same --nproc / "
                  "--world_size")
    else:
        resume = "; no checkpoint had been written"
    reason = re.sub(r"^\[[^\]]*\]\s*", "", _first_line(error))  # gloo's [source file:line] prefix
    return DistributedError(f"rank {rank} lost {peer} of the process group ({reason}): the run "
                            f"stopped{resume}")


def keep_metrics(self, result, num_sample):
    """``Trainer._map_reduce``: the metrics are already those of all rows (see the module docstring)."""
    return result
