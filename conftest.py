"""Test-suite configuration shared by tests/ and parity_tests/.

JAX runs with float64 enabled for the whole session (the parity suite needs it), so
every test sees the same configuration whichever subset is run; tests that mean
float32 say so with explicit dtypes.
"""

import jax

jax.config.update("jax_enable_x64", True)
