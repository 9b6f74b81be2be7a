"""Checkpoints that hold plain data only, so that loading one cannot run code.

RecBole pickles its ``Config`` into every checkpoint, and ``Config.__init__`` calls ``eval`` on
string values: a crafted file that asks the unpickler to construct a ``Config`` runs any command.
The plugin's checkpoints (written for every model, RecBole's included, through the
``Trainer._save_checkpoint`` shim of :mod:`recbole_dien.compat`) hold only what torch's default
``weights_only`` loader rebuilds without help: tensors, numbers, strings, lists, tuples and dicts.

* ``config``: the final configuration as plain data (enums and devices written as tagged dicts),
  the model's name and class path, and the host it ran in (``recbole`` or ``hopwise``);
  :func:`config_from_checkpoint` rebuilds the plugin's ``Config`` of that host from it without ever
  evaluating a string, and only for a model class this package or the host defines.
* ``state_dict``, ``other_parameter``, ``epoch``, ``cur_step``, ``best_valid_score``: as RecBole
  writes them (the best epoch's weights), so RecBole's own best-model reload works unchanged;
  ``other_parameter`` keeps the plain-data entries only (the others - sub-modules, whose weights
  are in ``state_dict``, and tables derived from the dataset - are rebuilt with the model).
* ``resume``: the state after the last completed epoch (see :mod:`recbole_dien.trainer.resume`).

:func:`load_checkpoint` reads any file with ``weights_only=True`` and no allow-list beyond torch's
own, and turns every failure into one :class:`CheckpointError` line naming the file.
"""
import enum
import itertools
import logging
import os
import pickle
import re
import secrets

import torch

from recbole_dien.utils.errors import RecBoleDienError
from recbole_dien.utils.hosts import HOSTS, RECBOLE, host_of

FORMAT = "recbole-dien-checkpoint/1"
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
_PLAIN_SCALARS = (str, int, float, bool, type(None))


class CheckpointError(RecBoleDienError):
    """A checkpoint that cannot be loaded: missing, corrupt, not plain data, or not the plugin's."""


# --------------------------------------------------------------------------- plain data

def _encode(value, path, dropped):
    if isinstance(value, enum.Enum):
        return {"__enum__": type(value).__name__, "name": value.name}
    if isinstance(value, torch.device):
        return {"__device__": str(value)}
    if isinstance(value, torch.dtype):  # hopwise's weight_precision
        return {"__dtype__": str(value).removeprefix("torch.")}
    if isinstance(value, _PLAIN_SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        items = [_encode(v, f"{path}[{i}]", dropped) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {str(k): _encode(v, f"{path}.{k}", dropped) for k, v in value.items()}
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy / torch scalars
        return value.item()
    dropped.append(path)
    return repr(value)


def _decode(value, host=RECBOLE):
    """Plain data back to settings; the enums the host keeps in a final config (its
    ``utils.enum_type``) are the only objects built."""
    if isinstance(value, dict):
        if set(value) == {"__enum__", "name"}:
            enum_class = getattr(host.enums, str(value["__enum__"]), None)
            if not (isinstance(enum_class, type) and issubclass(enum_class, enum.Enum)) \
                    or value["name"] not in enum_class.__members__:
                raise CheckpointError(f"unknown setting value {value['__enum__']}.{value['name']} in the configuration")
            return enum_class[value["name"]]
        if set(value) == {"__dtype__"}:
            dtype = getattr(torch, str(value["__dtype__"]), None)
            if not isinstance(dtype, torch.dtype):
                raise CheckpointError(f"unknown dtype {value['__dtype__']!r} in the configuration")
            return dtype
        if set(value) == {"__device__"}:
            try:
                return torch.device(value["__device__"])
            except (RuntimeError, TypeError):
                raise CheckpointError(f"unknown device {value['__device__']!r} in the configuration") from None
        return {k: _decode(v, host) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, host) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v, host) for v in value)
    return value


def class_path(cls):
    """Where a class is defined: a class the plugin built for a host (``DIN.recbole``) is named as
    its host-neutral class (``recbole_dien.model.din.DIN``), the checkpoint's host saying which."""
    host = getattr(cls, "host", None)
    qualname = cls.__qualname__
    if host is not None and qualname.endswith(f".{host.name}"):
        qualname = qualname[:-len(host.name) - 1]
    return f"{cls.__module__}.{qualname}"


def encode_config(config):
    """A config as plain data: its final dict, model name and class path, dataset, parameter groups."""
    dropped = []
    final = _encode(dict(config.final_config_dict), "config", dropped)
    if dropped:
        logging.getLogger().warning("checkpoint: settings that are not plain data are stored as their repr: "
                                    + ", ".join(dropped))
    return {"model": config["model"], "model_class": class_path(config.model_class), "dataset": config["dataset"],
            "host": host_of(config, RECBOLE).name, "final_config_dict": final,
            "parameters": {group: list(keys) for group, keys in getattr(config, "parameters", {}).items()}}


def model_class_from_path(path, host=RECBOLE):
    """The model class a checkpoint names, if this package or the host (RecBole unless given)
    defines it (nothing else is imported: importing a module named by a file could run its code)."""
    from recbole_dien.utils.utils import get_model

    module, _, name = str(path).rpartition(".")
    if not name.isidentifier():
        raise CheckpointError(f"the checkpoint's model class {path!r} is not a class name")
    if module.startswith("recbole_dien."):
        candidate = get_model(name, host)
    elif module.startswith(f"{host.package}.model."):
        candidate = get_model(host.prefix + name, host)
    else:
        raise CheckpointError(
            f"the checkpoint's model class {path} is neither recbole-dien's nor {host.title}'s; load it with "
            "load_data_and_model(file, model_class=YourModel)")
    if class_path(candidate) != path:
        raise CheckpointError(f"the checkpoint's model class {path} does not exist in this installation")
    return candidate


def _refuse_evaluated_settings(final, model_class):
    """RecBole's KD_DAGFM evaluates its ``teacher`` setting as Python when built: accept only the
    name of one of RecBole's context-aware models there."""
    teacher = final.get("teacher")
    if model_class.__name__ == "KD_DAGFM" and teacher is not None:
        context_aware = host_of(model_class, RECBOLE).module("model.context_aware_recommender")

        if not (isinstance(teacher, str) and teacher.isidentifier() and isinstance(getattr(context_aware, teacher, None), type)):
            raise CheckpointError(f"refused: the checkpoint's KD_DAGFM teacher {teacher!r} is not a RecBole model "
                                  "name, and RecBole would evaluate it as Python code")


def checkpoint_host(checkpoint):
    """The host a checkpoint's run ran in (checkpoints before hosts were RecBole's), installed."""
    data = checkpoint.get("config")
    name = data.get("host", RECBOLE.name) if isinstance(data, dict) else RECBOLE.name
    if name not in HOSTS:
        raise CheckpointError(f"the checkpoint's host {name!r} is neither recbole nor hopwise")
    HOSTS[name].require()
    return HOSTS[name]


def config_from_checkpoint(checkpoint, model_class=None):
    """Rebuild the run's ``Config`` (the plugin's, on the host the run ran in) from a loaded
    checkpoint, on this machine's device (CUDA only if the run used it and it is available), for
    single-process use."""
    data = checkpoint.get("config")
    if not isinstance(data, dict) or "final_config_dict" not in data:
        raise CheckpointError("the checkpoint holds no plain-data configuration")
    from recbole_dien.config import config_class

    host = checkpoint_host(checkpoint)
    Config = config_class(host)  # noqa: N806
    model_class = model_class or model_class_from_path(data["model_class"], host)
    final = _decode(data["final_config_dict"], host)
    _refuse_evaluated_settings(final, model_class)
    wants_cuda = str(final.get("device", "cpu")).startswith("cuda")
    final.update(device=torch.device("cuda" if wants_cuda and torch.cuda.is_available() else "cpu"),
                 single_spec=True, local_rank=0)
    return Config.from_final_config_dict(final, model_class, _decode(data.get("parameters", {}), host))


def plain_other_parameter(model):
    """The entries of ``model.other_parameter()`` torch's weights-only loader can rebuild."""
    def plain(value):
        if isinstance(value, (torch.Tensor,) + _PLAIN_SCALARS):
            return True
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        return False

    return {key: value for key, value in model.other_parameter().items() if plain(value)}


# --------------------------------------------------------------------------- files

class CheckpointWriteError(CheckpointError):
    """A checkpoint that could not be written (disk full, permissions, a vanished folder)."""

    def __init__(self, path, reason):
        super().__init__(f"could not write checkpoint {path} ({reason})")
        self.path, self.reason = path, reason


def _os_reason(error):
    """The OS's words for the first OSError in ``error``'s chain (torch wraps ENOSPC in a RuntimeError)."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return f"{os.strerror(seen.errno)}, errno {seen.errno}"
        seen = seen.__cause__ or seen.__context__
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def reserve_file(path):
    """Create ``path`` empty and exclusively, or, where a file of that name exists (another run's,
    started in the same second), ``<stem>-2<ext>``, ``<stem>-3<ext>``, ...; the name created."""
    stem, ext = os.path.splitext(str(path))
    for number in itertools.count(1):
        candidate = str(path) if number == 1 else f"{stem}-{number}{ext}"
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        except OSError as error:
            raise CheckpointWriteError(candidate, _os_reason(error)) from None
        return candidate


def write_atomically(state, path):
    """``torch.save`` to a temporary file of its own (created exclusively) beside ``path``, then
    rename: a crash never leaves a half-written file, and the previous file stays whole until the
    new one is complete. Any failure is one :class:`CheckpointWriteError` (the previous file kept)."""
    path = str(path)
    tmp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with os.fdopen(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644), "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: an OS crash cannot leave an empty file
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:
        raise CheckpointWriteError(path, _os_reason(error)) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _unpickler_problem(error):
    """The line of a weights-only unpickler error that says what was wrong, without torch's
    advice around it (to pass ``weights_only=False``, which would let the file run code)."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Check the documentation", "Please file an issue",
                                                            "(1)", "(2)"))]
    # sentence by sentence: torch's advice (weights_only=False, "trusted source") never passes on
    sentences = [sentence.strip() for line in lines for sentence in re.split(r"(?<=\.)\s+", line)]
    sentences = [sentence for sentence in sentences if sentence and not re.search(
        r"weights_only|arbitrary code|trusted source|PyTorch 2\.6", sentence)]
    return sentences[0] if sentences else type(error).__name__


def _class_reached_by_getattr(path):
    """The class a pickle reaches with ``getattr(<module.Class>, name)``, read from its opcodes
    without running any (``pickletools``); None if the file does not show one."""
    import pickletools
    import zipfile

    getattrs = ("builtins.getattr", "__builtin__.getattr")
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read(next(name for name in archive.namelist() if name.endswith("/data.pkl")))
        strings, outer = [], None
        for opcode, argument, _ in pickletools.genops(data):
            name = None
            if opcode.name == "GLOBAL":
                name = argument.replace(" ", ".")
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                name = ".".join(strings[-2:])
            elif "UNICODE" in opcode.name:
                if outer is not None and str(argument).isidentifier():
                    return f"{outer}.{argument}"
                strings.append(argument)
            if name is not None and name not in getattrs:
                outer = name
        return outer
    except (OSError, KeyError, StopIteration, ValueError, zipfile.BadZipFile):
        return None


def _refusal(path, error):
    """One line for a failed weights-only load: what the file asked for, or that it is corrupt."""
    problem = _unpickler_problem(error)
    # torch names the global two ways: "Unsupported global: GLOBAL x.y" and, for a module it blocks
    # (os, posix, subprocess, ...), "unsupported GLOBAL posix.system whose module posix is blocked"
    named = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(error))
    if named:
        name = named.group(1).rstrip(".")
        if name.rpartition(".")[2] == "getattr":  # a class nested in another (DIN.recbole): getattr(outer, name)
            name = _class_reached_by_getattr(path) or name
        return (f"refused to load {path}: it asks to construct {name}, and constructing Python objects from "
                "a file can run code; recbole-dien loads plain data only (tensors, numbers, strings, lists, "
                "dicts). Checkpoints written by RecBole itself or by earlier versions of recbole-dien pickle "
                "such objects: train again with this version")
    return f"checkpoint {path} is corrupt or not a torch checkpoint ({problem.rstrip('.')})"


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint with ``weights_only=True`` and torch's own allow-list only.

    Raises :class:`CheckpointError` (one line naming the file) when the file is missing, empty,
    truncated or corrupt, asks for any Python object beyond plain data, or is not the plugin's.
    """
    path = str(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a folder, not a file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): not a checkpoint")
    with open(path, "rb") as f:
        if f.read(4) != ZIP_MAGIC:  # before torch reads it: a 2 GB file of zeros is refused at once
            raise CheckpointError(f"checkpoint {path} is corrupt or not a torch checkpoint (it does not start as the "
                                  "zip archive every torch checkpoint is)")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(_refusal(path, error)) from None
    except Exception as error:  # noqa: BLE001 - a corrupt pickle fails in many ways (IndexError, KeyError, ...)
        raise CheckpointError(f"checkpoint {path} is truncated, corrupt or not a torch checkpoint "
                              f"({_unpickler_problem(error).rstrip('.')})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{path} is not a recbole-dien checkpoint (format {found!r}, expected {FORMAT!r}); "
                              "it was not written by run_recbole.py / recbole_dien.run")
    if "state_dict" not in checkpoint:
        raise CheckpointError(f"checkpoint {path} holds no model weights ('state_dict')")
    return checkpoint
