"""Lets ``python -m kernelform`` run the command line."""

from kernelform.cli import run

run()
