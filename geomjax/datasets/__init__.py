"""Synthetic data sets generated in code (no downloads)."""

from geomjax.datasets._charged_particles import (
    NBodyExamples,
    charged_particles,
    charged_particles_energy,
    coulomb_forces,
    nbody_egnn_split,
    simulate_charged_particles,
)

__all__ = [
    "NBodyExamples",
    "charged_particles",
    "charged_particles_energy",
    "coulomb_forces",
    "nbody_egnn_split",
    "simulate_charged_particles",
]
