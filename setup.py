"""nua: the orchestrator daemon of a small self-hosting platform."""

from setuptools import find_packages, setup

setup(
    name="nua",
    version="0.1.0",
    description="nua orchestrator: an actor-tree daemon serving JSON-RPC 2.0 over ZeroMQ",
    long_description=open("README.md", encoding="utf-8").read(),  # noqa: SIM115, PTH123
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["nua", "nua.*"]),
    # The original project's import name, kept as a small compatibility module (see its docstring).
    py_modules=["nua_orchestrator"],
    package_data={"nua": ["params.toml", "py.typed", "http/console/*"]},
    # Each runtime dependency up to its next major release, as its project defines one:
    # semantic versions (pykka, pyzmq, tinyrpc, psutil, psycopg) below the next first
    # number; SQLAlchemy's x.y series are its majors (2.0 -> 2.1 has a migration
    # guide), so below 2.2; toml is 0.x (the next minor is a major); structlog uses
    # CalVer (the first number is the year) and breaks only after a year of
    # DeprecationWarning, so below next year's; h11 is 0.x (below the next minor).
    # Raise a bound after `make test` passes on the new release.
    # h11 (python-hyper): the HTTP/1.1 parser of the HTTP server, pure Python and without
    # I/O of its own, so one selector thread serves every connection and event stream.
    install_requires=[
        "pykka>=4.1,<5",
        "pyzmq>=25,<28",
        "tinyrpc>=1.1.7,<2",
        "sqlalchemy>=2.0.30,<2.2",
        "psutil>=5.9,<8",
        "toml>=0.10.2,<0.11",
        "structlog>=24.1,<27",
        "h11>=0.16,<0.17",
        # `nua completion bash|zsh`: static scripts made from the argparse parser (no Python run at each TAB,
        # which argcomplete needs); semantic versions, so below 2.
        "shtab>=1.7,<2",
    ],
    extras_require={
        "pg": ["psycopg[binary]>=3.1,<4"],
        "test": [
            "pytest==9.2.0",
            "pytest-timeout==2.4.0",
            "hypothesis==6.170.17",
            "ruff==0.17.6",
            "mypy==2.4.1",
            "import-linter==2.17",
            "types-toml==0.10.8.20260518",
            "types-psutil==7.2.2.20261111",
            "psycopg[binary]==3.3.9",
            # The console's browser tests drive Debian's chromium through chromium-driver.
            "selenium==4.51.0",
        ],
    },
    entry_points={
        "console_scripts": [
            "nua-orchestrator = nua.daemon.cli:main",
            "nua = nua.rpc.cli:main",
        ],
    },
)
