"""The parts of ``tools.make_samples``: raw material, file writers, and one module of makers per family."""
