"""Tests of ``kernelform watch``, the controller, against real Jupyter servers."""
