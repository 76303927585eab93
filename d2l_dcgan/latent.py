"""Walks in the latent space (Radford et al. 2016, Figure 4): rows of images whose noise moves
from one random point to another along a great circle.

Spherical rather than linear interpolation (White 2016, "Sampling Generative Networks"): in 100
dimensions a Gaussian's samples lie near the sphere of radius 10, and the straight line between
two of them passes well inside it (about 7 at the midpoint of two orthogonal ones), where the
generator saw no noise in training; slerp between two points of equal norm keeps that norm."""
import numpy as onp


def slerp(z0, z1, t):
    """White's slerp: sin((1-t) W) / sin W * z0 + sin(t W) / sin W * z1, W the angle between z0
    and z1; t=0 gives z0 and t=1 gives z1 exactly. The straight line when they are parallel."""
    z0, z1 = onp.asarray(z0), onp.asarray(z1)
    a, b = z0.ravel().astype('float64'), z1.ravel().astype('float64')
    cos = a @ b / (onp.linalg.norm(a) * onp.linalg.norm(b))
    omega = onp.arccos(onp.clip(cos, -1, 1))
    if onp.sin(omega) < 1e-6:
        w0, w1 = 1 - t, t
    else:
        w0, w1 = onp.sin((1 - t) * omega) / onp.sin(omega), onp.sin(t * omega) / onp.sin(omega)
    return (w0 * a + w1 * b).reshape(z0.shape).astype(z0.dtype)


def latent_walks(num_rows, steps, latent_dim, seed):
    """Noise for `num_rows` walks of `steps` points each, seeded.

    Returns (Z, ends): Z of shape (num_rows * steps, latent_dim, 1, 1), row by row, the first
    and last point of each row being its two random endpoints; ends of shape
    (num_rows, 2, latent_dim, 1, 1), those endpoints drawn from N(0, 1)."""
    if steps < 2:
        raise ValueError(f'a walk needs at least 2 points, got {steps}')
    rng = onp.random.default_rng(seed)
    ends = rng.standard_normal((num_rows, 2, latent_dim, 1, 1), dtype='float32')
    ts = onp.linspace(0, 1, steps)
    Z = onp.stack([slerp(z0, z1, t) for z0, z1 in ends for t in ts])
    return Z, ends
