"""recbole-dien: DIN, DIEN and DSIN for RecBole, faithful to the papers and fast on a CPU."""
from setuptools import find_packages, setup

# Ranges that include today's releases: recbole_dien.compat makes RecBole 1.2.1 work on numpy 1 and 2,
# pandas 2.0-3.x and any setuptools (tests/test_compat.py; docs/recbole-fixes.md says what each shim fixes).
#  - torch < 2.14 resolves to the 2.13 CPU wheel instead of a multi-GB CUDA build; 2.6+: torch.load
#    defaults to weights_only=True, also in RecBole's own loads of pre-trained files.
#  - RecBole 1.2.1 is the default host, a requirement, so that `pip install -e . && python run_recbole.py`
#    works on a fresh machine. It pins colorlog==4.7.2 and colorama==0.4.4 and asks for ray<=2.6.3 (whose
#    import needs setuptools' pkg_resources; no path of the plugin imports ray). hopwise is the second host
#    (docs/hosts.md): the "hopwise" extra adds it beside RecBole; an environment that must stay free of
#    RecBole's pins installs the plugin with --no-deps beside hopwise, scipy and pyyaml (as .ci/run does).
HOPWISE = ["hopwise>=0.9.1,<0.10"]
INSTALL_REQUIRES = [
    "recbole==1.2.1",
    "torch>=2.6,<2.14",
    "numpy>=1.24",
    "pandas>=2.0",
    "scipy>=1.10",
    "pyyaml>=6.0",
]

setup(
    name="recbole-dien",
    version="0.1.0",
    description="DIN, DIEN and DSIN for RecBole: faithful to the papers, fast on a CPU",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    # props/ and dataset_configs/ live at the top of the checkout; installed, they become
    # recbole_dien/props and recbole_dien/dataset_configs (see recbole_dien.utils.resources).
    packages=find_packages(include=["recbole_dien", "recbole_dien.*"]) + [
        "recbole_dien.props",
        "recbole_dien.dataset_configs",
        "recbole_dien.hyper",
    ],
    package_dir={
        "recbole_dien.props": "props",
        "recbole_dien.dataset_configs": "dataset_configs",
        "recbole_dien.hyper": "hyper",
    },
    package_data={
        "recbole_dien.props": ["*.yaml"],
        "recbole_dien.dataset_configs": ["*.yaml"],
        "recbole_dien.hyper": ["*.hyper"],
    },
    install_requires=INSTALL_REQUIRES,
    # matplotlib draws the benchmark's and the attention command's plots; hyperopt runs RecBole's
    # HyperTuning (recbole-dien tune, run_hyper.py); onnx, onnxscript and onnxruntime export and run
    # ONNX serving models (recbole-dien export --format onnx; the releases tested); the tests exercise all
    extras_require={"hopwise": HOPWISE, "benchmark": ["matplotlib>=3.7"], "tune": ["hyperopt>=0.2.7"],
                    "serving": ["onnx>=1.23", "onnxscript>=0.7", "onnxruntime>=1.32"],
                    "test": ["pytest>=7", "matplotlib>=3.7", "hyperopt>=0.2.7",
                             "onnx>=1.23", "onnxscript>=0.7", "onnxruntime>=1.32"]},
    entry_points={"console_scripts": ["recbole-dien=recbole_dien.cli:main"]},
)
