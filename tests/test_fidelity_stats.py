"""The task-fidelity harness's bootstrap (benchmarks/fidelity_stats.py) against independent
references: the normal approximation of a Bernoulli mean, the delta-method standard error of
a ratio of sums, and the closed forms of the exact binomial interval at k = 0 and k = n."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "fidelity_stats.py"
_spec = importlib.util.spec_from_file_location("fidelity_stats", _PATH)
fs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fs)

Z975 = 1.959963984540054  # standard normal 97.5% quantile


def test_bernoulli_mean_matches_normal_approximation() -> None:
    n, k = 400, 120
    x = np.r_[np.ones(k), np.zeros(n - k)]
    iv = fs.bootstrap_ratio(x, seed=1)
    p = k / n
    half = Z975 * math.sqrt(p * (1 - p) / n)  # 0.0449
    assert iv.estimate == p
    assert iv.low == pytest.approx(p - half, abs=0.006)
    assert iv.high == pytest.approx(p + half, abs=0.006)


def test_ratio_of_sums_matches_delta_method() -> None:
    """LLM-like: sequences of different lengths; the CI of pooled agreement over positions,
    resampling whole sequences, has the delta-method width of a ratio estimator."""
    rng = np.random.default_rng(3)
    T = rng.integers(60, 244, size=300).astype(np.float64)
    agree = np.round(T * np.clip(rng.normal(0.9, 0.05, size=T.size), 0, 1))
    iv = fs.bootstrap_ratio(agree, T, seed=7)
    r = agree.sum() / T.sum()
    se = math.sqrt(np.sum((agree - r * T) ** 2)) / T.sum()
    assert iv.estimate == pytest.approx(r, rel=1e-12)
    assert iv.high - iv.low == pytest.approx(2 * Z975 * se, rel=0.08)
    assert iv.low < r < iv.high


def test_deterministic_with_seed() -> None:
    x = np.random.default_rng(0).random(50)
    a, b = fs.bootstrap_ratio(x, seed=5), fs.bootstrap_ratio(x, seed=5)
    assert a == b
    assert fs.bootstrap_ratio(x, seed=6) != a
    assert fs.bootstrap_ratio(x) == fs.bootstrap_ratio(x, seed=fs.SEED)


def test_constant_input_and_errors() -> None:
    iv = fs.bootstrap_ratio(np.ones(256))
    assert (iv.estimate, iv.low, iv.high) == (1.0, 1.0, 1.0)  # the degenerate case the doc names
    assert all(math.isnan(v) for v in fs.bootstrap_ratio(np.zeros(0)))
    with pytest.raises(ValueError):
        fs.bootstrap_ratio(np.ones(3), np.ones(4))
    with pytest.raises(ValueError):
        fs.bootstrap_ratio(np.ones(3), level=1.0)


@pytest.mark.parametrize("n", [24, 256, 1000])
def test_clopper_pearson_closed_forms(n: int) -> None:
    a = (1 - fs.LEVEL) / 2
    assert fs.clopper_pearson(n, n).low == pytest.approx(a ** (1 / n), rel=1e-9)
    assert fs.clopper_pearson(n, n).high == 1.0
    assert fs.clopper_pearson(0, n).high == pytest.approx(1 - a ** (1 / n), rel=1e-9)
    mid = fs.clopper_pearson(n // 2, n)
    assert mid.low < 0.5 < mid.high


# ----------------------------------------------------------------------------- the report step
_TF = Path(__file__).resolve().parents[1] / "benchmarks" / "task_fidelity.py"
_spec_tf = importlib.util.spec_from_file_location("task_fidelity", _TF)
tf = importlib.util.module_from_spec(_spec_tf)
_spec_tf.loader.exec_module(tf)


def _row(family: str, i: int, metric: float, numel: int = 1000, metric2: float = math.nan,
         metric3: float = math.nan, setting: str = "auto") -> dict:
    return {"family": family, "input_id": str(200_000 + i), "setting": setting, "bits": "2", "quality": "",
            "numel": str(numel), "bpfp": 1.0, "mse": 0.0, "metric": metric, "metric2": metric2,
            "metric3": metric3, "error": ""}


def test_report_llm_pools_positions_and_resamples_sequences() -> None:
    rows = [_row("llm", 0, 1.0, numel=100 * 576), _row("llm", 1, 0.5, numel=300 * 576)]
    s = tf.summarize(rows)["llm"][("auto", "2", "")]
    assert s["metric"].estimate == pytest.approx(250 / 400)  # positions pooled, not 0.75
    # two sequences: the resamples are {0,0}, {0,1}/{1,0}, {1,1}: the interval spans 0.5..1
    assert (s["metric"].low, s["metric"].high) == (0.5, 1.0)
    assert not s["ok"]


def test_report_cnn_rule_needs_the_lower_bound() -> None:
    all_agree = [_row("cnn", i, 1.0) for i in range(256)]
    assert tf.summarize(all_agree)["cnn"][("auto", "2", "")]["ok"]
    three_flips = [_row("cnn", i, float(i >= 3)) for i in range(256)]
    s = tf.summarize(three_flips)["cnn"][("auto", "2", "")]
    assert s["metric"].estimate == pytest.approx(253 / 256)  # 0.988: the point estimate fails too
    assert not s["ok"]


def test_report_latent_ratio_is_paired() -> None:
    """PSNRs that vary a lot between images but lose 0.5% each: the paired ratio's interval
    is tight and within 1%; a constant denominator would not be."""
    ref = np.random.default_rng(0).uniform(25, 40, size=64)
    rows = [_row("latent", i, 50.0, metric2=0.995 * r, metric3=r) for i, r in enumerate(ref)]
    s = tf.summarize(rows)["latent"][("auto", "2", "")]
    (name, iv), = s["crit"]
    assert iv.estimate == pytest.approx(0.995) and iv.high - iv.low < 1e-9
    assert s["ok"]


def test_settings_spec_with_own_bits() -> None:
    got = tf.settings_for("llm", ["auto:3,4", "max-error:-1", "outliers-8:2"])
    assert got == [("auto", "index", 3, ""), ("auto", "index", 4, ""), ("max-error", "index", -1, ""),
                   ("outliers-8", "index", 2, "")]
    assert [b for _, _, b, _ in tf.settings_for("cnn", ["max-error"], bits=[0, 1, 9])] == [0, 1]
    assert tf.settings_for("vit", ["max-error:1.5,2"]) == [("max-error", "index", 1.5, ""), ("max-error", "index", 2, "")]


def test_settings_kivi_and_scales() -> None:
    got = tf.settings_for("llm", ["kivi-channel-32", "kivi-token-128:3", "scales-token:4"])
    assert got == [("kivi-channel-32", "kivi", 2, ""), ("kivi-channel-32", "kivi", 3, ""),
                   ("kivi-channel-32", "kivi", 4, ""), ("kivi-token-128", "kivi", 3, ""),
                   ("scales-token", "index", 4, "")]
    assert tf.settings_for("cnn", ["kivi-token-32:3"]) == []  # llm only
    assert tf.settings_for("cnn", ["scales-token:3"]) == [("scales-token", "index", 3, "")]  # channels last
    assert tf.settings_for("vit", ["scales-channel:3"]) == [("scales-channel", "index", 3, "")]


def test_token_stages_run_channels_first_maps_channels_last() -> None:
    # a CNN map: rotation and scales along the channels (moved last and back), so the
    # decoded map has the input's layout and is close to it at 6 bits
    x = np.random.default_rng(1).standard_normal((1, 64, 5, 7)).astype(np.float32)
    for setting in ("rotation", "scales-channel"):
        _, _, y = tf.Encoders("cnn", "features13", 1).codec(setting, 6)(x)
        assert y.shape == x.shape
        assert float(np.mean((y - x) ** 2)) < 0.01 * float(np.var(x))


@pytest.mark.parametrize("per", ["channel", "token"])
def test_kivi_codec_counts_groups_and_bounds_error(per: str) -> None:
    """The harness's KIVI setting: tokens x channels, groups along the chosen axis (capped,
    the last one padded), 4 bytes a group, every value within half a step of its group."""
    pytest.importorskip("zstandard")
    x = np.random.default_rng(0).standard_normal((1, 70, 48)).astype(np.float32)
    x[0, 0, 5] = 2e4  # a massive activation: only its own groups coarsen
    nbytes, payload, y = tf.Encoders("llm", "hidden15", 1).codec("kivi-" + per + "-32", 3)(x)
    groups = 48 * 3 if per == "channel" else 70 * 2  # 70 tokens -> 3 groups of 32; 48 channels -> 2
    assert nbytes - payload == 4 * groups and y.shape == x.shape and y.dtype == np.float32
    ax = 1 if per == "channel" else 2
    grp = np.arange(x.shape[ax]) // 32
    err = np.abs(y.astype(np.float64) - x)
    for g in np.unique(grp):
        sl = [slice(None)] * 3
        sl[ax] = grp == g
        xs = x[tuple(sl)]
        width = xs.max(axis=ax) - xs.min(axis=ax)  # per group of the other axis
        tol = width / 7 * (0.5 + 1e-3) + np.abs(xs).max(axis=ax) * 2e-3  # half a step, float16 slack
        assert np.all(err[tuple(sl)].max(axis=ax) <= tol)
    hit = np.zeros(x.shape, bool)  # the outlier's own group: tokens 0..31 of channel 5, or channels 0..31 of token 0
    hit[(0, slice(0, 32), 5) if per == "channel" else (0, 0, slice(0, 32))] = True
    assert err[~hit].max() < 1.0  # elsewhere the steps stay fine


def test_bpfp_at_interpolates_log_rate_in_log_disagreement() -> None:
    rate, agree = np.array([1.0, 2.0, 4.0]), np.array([0.5, 0.9, 0.99])
    assert float(tf.bpfp_at(rate, agree, np.array(0.9))) == pytest.approx(2.0)
    assert float(tf.bpfp_at(rate, agree, np.array(1 - np.sqrt(0.1 * 0.01)))) == pytest.approx(np.sqrt(8))
    assert np.isnan(tf.bpfp_at(rate, agree, np.array(0.4)))  # below the curve's first point
    assert np.isnan(tf.bpfp_at(rate, agree, np.array(0.995)))  # never reached
    # resamples along a trailing axis
    got = tf.bpfp_at(np.stack([rate, rate], 1), np.stack([agree, agree], 1), np.array([0.9, 0.99]))
    assert got == pytest.approx([2.0, 4.0])
