"""The data scientist's client: Python API and IPython magics."""
