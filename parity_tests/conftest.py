"""The parity suite runs JAX in float64 too; enable it before any array is made."""

import jax

jax.config.update("jax_enable_x64", True)
