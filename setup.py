"""Package discovery only (everything else is in pyproject.toml).

The bundled environments live in ``environments/`` and the in-sandbox server in ``sandboxes/``
(the layout users asked for); they install under the import names ``agentrl_envs`` and
``agentrl_sandboxes`` so agentrl never claims generic top-level names in site-packages.
"""

from setuptools import find_packages, setup

PACKAGE_DIRS = {"agentrl_envs": "environments", "agentrl_sandboxes": "sandboxes"}

packages = find_packages(include=["agentrl", "agentrl.*"])
for name, folder in PACKAGE_DIRS.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=PACKAGE_DIRS)
