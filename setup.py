"""Build hook: ship ``semcom-torchvision.pth`` (the start-up hook of :mod:`semcom_torchvision`) into
``site-packages``, for wheels and for editable installs alike. Everything else is in ``setup.cfg``."""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "semcom-torchvision.pth"


class build_py_with_pth(build_py):
    """``build_py`` that also puts the start-up ``.pth`` file at the top of the build folder."""

    def run(self):
        super().run()
        self.copy_file(PTH, os.path.join(self.build_lib, PTH), preserve_mode=0)

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH)]

    def get_output_mapping(self):
        mapping = super().get_output_mapping()
        mapping[os.path.join(self.build_lib, PTH)] = PTH
        return mapping


class editable_wheel_with_pth(editable_wheel):
    """``pip install -e .``: the editable wheel carries the same ``.pth`` file (the build folder is not in it)."""

    def _install_namespaces(self, installation_dir, pth_prefix):
        super()._install_namespaces(installation_dir, pth_prefix)
        shutil.copy(PTH, os.path.join(installation_dir, PTH))


setup(cmdclass={"build_py": build_py_with_pth, "editable_wheel": editable_wheel_with_pth})
