"""Per-prompt discriminator confidence: drawn to follow a deferral curve f(t), or read from
the artifact's `dist_*.txt` files.

f(t) is the fraction of prompts whose confidence is below t, i.e. the CDF of confidence, so a
draw by inverse transform of stratified uniforms reproduces f to within 1/n at every t.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.exceptions import TraceFormatError


def check_curve(t: list[float], f: list[float], key: str) -> None:
    """Raise unless (t, f) is a CDF on [0, 1]: t ascending from 0 to 1, f non-decreasing from 0 to 1."""
    if len(t) != len(f) or len(t) < 2:
        raise ValueError(f"{key}: x and y need the same length, at least 2 points")
    ta, fa = np.asarray(t, float), np.asarray(f, float)
    if ta[0] != 0.0 or ta[-1] != 1.0 or np.any(np.diff(ta) <= 0):
        raise ValueError(f"{key}.x: thresholds must rise strictly from 0 to 1")
    if fa[0] != 0.0 or fa[-1] != 1.0 or np.any(np.diff(fa) < 0):
        raise ValueError(f"{key}.y: fractions must rise from 0 to 1")


def read_curve_table(path: Path) -> tuple[list[float], list[float], str]:
    """A curve's points from a CSV file (a header row, then x,y rows; '#' lines are comments,
    one of them '# source: ...'): x, y and the source. ValueError says what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror or err}") from None
    source, rows = "", []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#"):
            if line.startswith("# source:"):
                source = line.removeprefix("# source:").strip()
            continue
        if line.strip():
            rows.append((n, line))
    x, y = [], []
    for n, line in rows[1:]:  # the first is the header
        cells = line.split(",")
        try:
            if len(cells) != 2:
                raise ValueError
            x.append(float(cells[0]))
            y.append(float(cells[1]))
        except ValueError:
            raise ValueError(f"{path}:{n}: want two numbers, x,y (got {line.strip()!r})") from None
    return x, y, source


def deferral_fraction(t: float | np.ndarray, curve_t: list[float], curve_f: list[float]) -> np.ndarray:
    """f(t) by linear interpolation of the curve's points."""
    return np.asarray(np.interp(t, curve_t, curve_f))


def draw(curve_t: list[float], curve_f: list[float], num_prompts: int, seed: int) -> np.ndarray:
    """One confidence per prompt index so that the fraction below t follows f(t)."""
    rng = np.random.default_rng([seed, 0xC0F])  # a stream of its own, apart from the trace's
    u = (rng.permutation(num_prompts) + rng.random(num_prompts)) / num_prompts
    fa, ta = np.asarray(curve_f, float), np.asarray(curve_t, float)
    # Inverse of a piecewise-linear CDF, segment by segment: a rising segment (t0, t1] carries
    # the mass (f0, f1]; a flat stretch of f carries none, so no draw falls inside it.
    rise = np.diff(fa) > 0
    t0, t1, f0, f1 = ta[:-1][rise], ta[1:][rise], fa[:-1][rise], fa[1:][rise]
    j = np.clip(np.searchsorted(f1, u, side="left"), 0, f1.size - 1)
    return t0[j] + (u - f0[j]) / (f1[j] - f0[j]) * (t1[j] - t0[j])


def read_artifact_dist(path: str | Path, values_per_prompt: int = 4) -> np.ndarray:
    """Confidence per prompt from a `dist_*.txt` file: P(fake) values, `values_per_prompt` per
    prompt, prompt-major; confidence = 1 - their mean."""
    p = Path(path)
    if not p.is_file():
        raise TraceFormatError(f"cascade.confidence_path: no such file: {p}")
    values: list[float] = []
    with p.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line:
                continue
            try:
                v = float(line)
                if not 0.0 <= v <= 1.0:
                    raise ValueError
            except ValueError:
                raise TraceFormatError(f"{p}:{lineno}: expected a probability in [0, 1], got {line[:40]!r}") from None
            values.append(v)
    if not values or len(values) % values_per_prompt:
        raise TraceFormatError(
            f"{p}: {len(values)} values is not a positive multiple of {values_per_prompt} (values per prompt)"
        )
    return 1.0 - np.asarray(values).reshape(-1, values_per_prompt).mean(axis=1)


def for_cascade(
    curve_t: list[float], curve_f: list[float], num_prompts: int, seed: int, path: str | None
) -> np.ndarray:
    """The run's per-prompt confidence: the artifact file at `path` when given, else drawn."""
    return read_artifact_dist(path) if path else draw(curve_t, curve_f, num_prompts, seed)
