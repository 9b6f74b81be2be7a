"""The frameworks the plugin runs in - RecBole and hopwise - and the plugin's classes built on each.

hopwise (a fork of RecBole) has RecBole's modules under its own package name
(``hopwise.data.dataset.SequentialDataset``, ``hopwise.utils.enum_type``, ...), but its own enum
classes, which never compare equal to RecBole's: a model carrying RecBole's ``InputType`` is no
model to hopwise, and a field typed with hopwise's ``FeatureType`` is no token to RecBole. So the
plugin's models, datasets and config are written once, host-neutral (classes without a framework
base), and each is built here on the host's own base class, with the host's enums:
``HOPWISE.model("DIN")`` is ``class DIN(recbole_dien.model.din.DIN, hopwise SequentialRecommender)``
with ``input_type = hopwise's InputType.POINTWISE``. A built class knows its host (``cls.host``);
:func:`host_of` finds the host of any object from the modules of its class's bases.

Nothing here imports a host until it is asked for one: importing the hopwise side never imports
RecBole and the other way round. The first use of a host applies the plugin's shims on it
(:mod:`recbole_dien.compat` for RecBole, :mod:`recbole_dien.hopwise.compat` for hopwise).
"""
import importlib
import importlib.util

from recbole_dien.utils.errors import RecBoleDienError

# Model name -> module of this package that defines it (host-neutral).
PLUGIN_MODELS = {
    "DIN": "recbole_dien.model.din",
    "DIEN": "recbole_dien.model.dien",
    "DSIN": "recbole_dien.model.dsin",
}


class HostNotInstalled(RecBoleDienError):
    """The framework asked for (RecBole or hopwise) is not installed."""


class Host:
    """One framework the plugin's classes run in: its package, its modules by RecBole's paths,
    its enums, and the plugin's classes built on its base classes (each built once)."""

    def __init__(self, package, title, install, shims):
        self.package = package          # the importable package: recbole | hopwise
        self.title = title              # its name in messages
        self.install = install          # the pip command that installs it
        self.prefix = f"{package}."     # spelling of the host's own model of a name the plugin also has
        self._shims = shims             # "module:function" applying the plugin's shims on the host
        self._active = False
        self._built = {}

    def __repr__(self):
        return f"<host {self.package}>"

    @property
    def name(self):
        return self.package

    def installed(self):
        return importlib.util.find_spec(self.package) is not None

    def require(self):
        """One line when the host is not installed."""
        if not self.installed():
            raise HostNotInstalled(f"{self.title} is not installed: {self.install}")

    def activate(self):
        """Apply the plugin's shims on this host (once; the first use of any of its modules does)."""
        if self._active:
            return
        self.require()
        self._active = True  # before the shims run: they use this host's modules themselves
        module, _, function = self._shims.partition(":")
        getattr(importlib.import_module(module), function)()

    def module(self, path):
        """The host's module at RecBole's ``path`` (``data.dataset`` -> ``hopwise.data.dataset``)."""
        self.activate()
        return importlib.import_module(f"{self.package}.{path}")

    # --- what the plugin's classes need of the host ----------------------------------------------

    @property
    def enums(self):
        return self.module("utils.enum_type")

    @property
    def FeatureType(self):  # noqa: N802 - the host's class of this name
        return self.enums.FeatureType

    @property
    def FeatureSource(self):  # noqa: N802
        return self.enums.FeatureSource

    @property
    def InputType(self):  # noqa: N802
        return self.enums.InputType

    @property
    def ModelType(self):  # noqa: N802
        return self.enums.ModelType

    @property
    def Interaction(self):  # noqa: N802
        return self.module("data.interaction").Interaction

    @property
    def SequentialDataset(self):  # noqa: N802
        return self.module("data.dataset").SequentialDataset

    def build(self, body, base, **attributes):
        """``body`` (a host-neutral class of this package) on ``base`` (a class of this host), with
        ``attributes``; built once per host. The class keeps the body's name and module, so it
        reads (and checkpoints name it, :func:`recbole_dien.trainer.checkpoint.class_path`) as the
        body does, and ``isinstance(x, body)`` holds. It is also ``<body>.<host>`` (``DIN.recbole``),
        which is where pickle finds it (multi-process runs send classes to their ranks)."""
        if body not in self._built:
            namespace = {"__module__": body.__module__, "__qualname__": f"{body.__qualname__}.{self.name}",
                         "__doc__": body.__doc__, "host": self, **attributes}
            self._built[body] = type(body.__name__, (body, base), namespace)
            setattr(body, self.name, self._built[body])
        return self._built[body]

    def model(self, name):
        """The plugin's model ``name`` (DIN, DIEN, DSIN) on this host's ``SequentialRecommender``."""
        body = getattr(importlib.import_module(PLUGIN_MODELS[name]), name)
        return self.build(body, self.module("model.abstract_recommender").SequentialRecommender,
                          input_type=self.InputType.POINTWISE)

    def dataset(self, body):
        """A dataset class of this package (:mod:`recbole_dien.data`) on this host's ``SequentialDataset``."""
        return self.build(body, self.SequentialDataset)


# RecBole is a requirement of the package (missing only where it was installed with --no-deps)
RECBOLE = Host("recbole", "RecBole", "pip install recbole==1.2.1", "recbole_dien.compat:activate")
HOPWISE = Host("hopwise", "hopwise", "pip install 'recbole-dien[hopwise]'", "recbole_dien.hopwise.compat:apply")
HOSTS = {host.name: host for host in (RECBOLE, HOPWISE)}


def get_host(name):
    """The host called ``name`` (recbole | hopwise), installed; one line otherwise."""
    if name not in HOSTS:
        raise RecBoleDienError(f"unknown host '{name}': the plugin runs in {' or '.join(HOSTS)}")
    HOSTS[name].require()
    return HOSTS[name]


def host_of(obj, default=None):
    """The host whose classes ``obj`` (an instance or a class) is built on: the first base class
    defined in a host's package; ``default`` (or one line) when there is none."""
    cls = obj if isinstance(obj, type) else type(obj)
    for base in cls.__mro__:
        host = HOSTS.get(base.__module__.partition(".")[0])
        if host is not None:
            return host
    if default is not None:
        return default
    raise RecBoleDienError(f"{cls.__module__}.{cls.__qualname__} is built on neither RecBole's nor hopwise's "
                           "classes: use the plugin's classes of one host (recbole_dien or recbole_dien.hopwise)")
