"""Synthetic data sets generated in code (no downloads)."""

from geomjax.datasets._charged_particles import (
    NBodyExamples,
    charged_particles,
    charged_particles_energy,
    coulomb_forces,
    nbody_egnn_split,
    simulate_charged_particles,
)
from geomjax.datasets._nbody_small import egnn_nbody_small, nbody_small_initial_conditions

__all__ = [
    "NBodyExamples",
    "charged_particles",
    "charged_particles_energy",
    "coulomb_forces",
    "egnn_nbody_small",
    "nbody_egnn_split",
    "nbody_small_initial_conditions",
    "simulate_charged_particles",
]
