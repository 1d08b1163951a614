"""kernelform: Jupyter kernels as config.

A YAML manifest declares which kernels run on which Jupyter servers;
``kernelform plan`` shows the difference from what runs and ``kernelform apply``
makes it so. This package keeps its imports lazy so that the CLI starts fast.
"""

__version__ = "0.1.0"
