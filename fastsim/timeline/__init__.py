"""The expert-cache and host-to-device timeline (SPEC section 3) as Numba kernels."""
