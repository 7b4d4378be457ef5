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
    package_data={"nua": ["params.toml", "py.typed"]},
    install_requires=[
        "pykka>=4.1,<5",
        "pyzmq>=25",
        "tinyrpc>=1.1.7",
        "sqlalchemy>=2.0.30",
        "psutil>=5.9",
        "toml>=0.10.2",
        "structlog>=24.1",
    ],
    extras_require={
        "pg": ["psycopg[binary]>=3.1"],
        "test": [
            "pytest==9.2.0",
            "pytest-timeout==2.4.0",
            "hypothesis==6.170.17",
            "ruff==0.17.6",
            "mypy==2.4.1",
            "types-toml==0.10.8.20260518",
            "types-psutil==7.2.2.20261111",
            "psycopg[binary]==3.3.9",
        ],
    },
    entry_points={
        "console_scripts": [
            "nua-orchestrator = nua.daemon.cli:main",
            "nua = nua.rpc.cli:main",
        ],
    },
)
