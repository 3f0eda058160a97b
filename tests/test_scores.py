"""The score functions of `attnlab.scores` against the independent float64 NumPy reference.

Every case replaces the initialised parameters with random normal ones of the same shapes and
feeds the very same arrays to the reference, so the comparison is of the formulas alone. JAX runs
in float32, the reference in float64.
"""

from __future__ import annotations

import re
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference as ref
import pytest

from attnlab.attention import masked_softmax
from attnlab.scores import SCORE_NAMES, SCORES, ScoreError, build_score


def attend(scores, mask, values):
    """`(context [d], weights [S])`: the weighted sum global attention forms (`attention.Soft`)."""
    weights = masked_softmax(scores, mask)
    return weights.astype(values.dtype) @ values, weights


ATOL = 1e-5
RTOL = 1e-5

S = 8  # source length
DQ, DK, A = 5, 7, 6  # query size, key size, attention width (all different on purpose)
D, A_SHARED = 6, 4  # shared size for the scores that need d_q == d_k
BATCH = 3
MASK = np.array([True, True, False, True, True, True, True, False])  # [S], padding inside too

_long = pytest.mark.filterwarnings("ignore:location score:UserWarning")

CASES = [
    pytest.param("dot", D, D, {}, id="dot"),
    pytest.param("scaled_dot", D, D, {}, id="scaled_dot"),
    pytest.param("general", DQ, DK, {}, id="general"),
    pytest.param("additive", DQ, DK, {"attn_dim": A, "zero_v": False}, id="additive"),
    pytest.param(
        "additive", DQ, DK, {"attn_dim": A, "zero_v": False, "bias": True}, id="additive-bias"
    ),
    pytest.param(
        "additive",
        DQ,
        DK,
        {"attn_dim": A, "zero_v": False, "normalize": True},
        id="additive-normalize",
    ),
    pytest.param("concat", DQ, DK, {"attn_dim": A}, id="concat"),
    pytest.param("concat", DQ, DK, {"attn_dim": A, "bias": True}, id="concat-bias"),
    pytest.param("concat", DQ, DK, {"key_identity": True}, id="concat-key_identity"),
    pytest.param(
        "concat", DQ, DK, {"key_identity": True, "bias": True}, id="concat-key_identity-bias"
    ),
    pytest.param("concat_shared", D, D, {"attn_dim": A_SHARED}, id="concat_shared"),
    pytest.param(
        "concat_shared", D, D, {"attn_dim": A_SHARED, "bias": True}, id="concat_shared-bias"
    ),
    pytest.param("location", DQ, DK, {"max_source_len": S + 3}, id="location-short"),
    pytest.param("location", DQ, DK, {"max_source_len": S}, id="location-exact"),
    pytest.param("location", DQ, DK, {"max_source_len": S - 3}, id="location-long", marks=_long),
]


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _run(mdl, query, keys):
    """Score one example: `query [d_q]`, `keys [S, d_k]` -> `[S]`."""
    return mdl(query, mdl.prepare(keys))


def _prepare(mdl, keys):
    return mdl.prepare(keys)


def _call(mdl, query, prepared):
    return mdl(query, prepared)


@partial(jax.jit, static_argnums=0)
def score_one(module, params, query, keys):
    return module.apply(params, query, keys, method=_run)


@partial(jax.jit, static_argnums=0)
def score_batch(module, params, queries, keys):
    """`queries [B, d_q]`, `keys [B, S, d_k]` -> `[B, S]` with `jax.vmap`."""
    return jax.vmap(lambda q, k: module.apply(params, q, k, method=_run))(queries, keys)


@partial(jax.jit, static_argnums=0)
def loss_and_grads(module, params, query, keys, mask, probe):
    """`sum(context * probe)` through score + attend, and its gradients w.r.t. all inputs."""

    def loss(params, query, keys):
        context, _ = attend(module.apply(params, query, keys, method=_run), mask, keys)
        return jnp.sum(context * probe)

    return jax.value_and_grad(loss, argnums=(0, 1, 2))(params, query, keys)


def init_shapes(module, query, keys):
    """The parameter tree `module.init` would give, as shapes only (nothing is computed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # location past S_max warns; tested below
        return jax.eval_shape(
            lambda q, k: module.init(jax.random.key(0), q, k, method=_run), query, keys
        )


def expected_shapes(name, query_dim, key_dim, options):
    """Parameter names and shapes as specified for each score."""
    attn = options.get("attn_dim")
    bias = options.get("bias", False)
    if name in ("dot", "scaled_dot"):
        return {}
    if name == "general":
        return {"W": (query_dim, key_dim)}
    if name == "additive":
        shapes = {"W_q": (query_dim, attn), "W_k": (key_dim, attn), "v": (attn,)}
        if bias or options.get("normalize", False):
            shapes["b"] = (attn,)
        if options.get("normalize", False):
            shapes["g"] = ()
        return shapes
    if name == "concat":
        if options.get("key_identity", False):
            shapes = {"W_a": (query_dim, key_dim), "v": (key_dim,)}
        else:
            shapes = {"W_a": (query_dim + key_dim, attn), "v": (attn,)}
        if bias:
            shapes["b"] = shapes["v"]
        return shapes
    if name == "concat_shared":
        shapes = {"W": (key_dim, attn), "v": (attn,)}
        if bias:
            shapes["b"] = (attn,)
        return shapes
    if name == "location":
        return {"W_a": (query_dim, options["max_source_len"])}
    raise AssertionError(name)


def reference_scores(name, options, p, query, keys):
    """The reference score `[S]` for one example; `p` maps parameter names to float64 arrays."""
    if name == "dot":
        return ref.dot(query, keys)
    if name == "scaled_dot":
        return ref.scaled_dot(query, keys)
    if name == "general":
        return ref.general(query, keys, p["W"])
    if name == "additive":
        return ref.additive(query, keys, p["W_q"], p["W_k"], p["v"], p.get("b"), p.get("g"))
    if name == "concat":
        key_identity = options.get("key_identity", False)
        return ref.concat(query, keys, p["W_a"], p["v"], p.get("b"), key_identity=key_identity)
    if name == "concat_shared":
        return ref.concat_shared(query, keys, p["W"], p["v"], p.get("b"))
    if name == "location":
        return ref.location(query, keys.shape[0], p["W_a"])
    raise AssertionError(name)


def reference_loss(name, options, p, query, keys, mask, probe):
    context, _ = ref.attend(reference_scores(name, options, p, query, keys), mask, keys)
    return float(context @ probe)


def make_data(query_dim, key_dim, seed, batch=None):
    """Random float32 `(query, keys)`; with `batch`, a leading batch axis on both."""
    rng = np.random.default_rng(seed)
    lead = () if batch is None else (batch,)
    query = rng.normal(size=lead + (query_dim,)).astype(np.float32)
    keys = rng.normal(size=lead + (S, key_dim)).astype(np.float32)
    return query, keys


def setup_case(name, query_dim, key_dim, options, seed=0):
    """Build and init the module, then swap in random normal parameters of the same shapes.

    Returns `(module, params for jax, the same values as float64 arrays for the reference)`.
    """
    module = build_score(name, query_dim, key_dim, **options)
    query, keys = make_data(query_dim, key_dim, seed)
    initial = init_shapes(module, query, keys)
    rng = np.random.default_rng(1000 + seed)
    values = {
        k: (0.5 * rng.normal(size=np.shape(v))).astype(np.float32)
        for k, v in initial.get("params", {}).items()
    }
    params = {"params": {k: jnp.asarray(v) for k, v in values.items()}}
    return module, params, {k: v.astype(np.float64) for k, v in values.items()}


def assert_scores_close(got, want):
    """Scores agree; where the reference rules a position out (`-inf`) the package must too."""
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == want.shape
    finite = np.isfinite(want)
    assert np.all(np.isfinite(got[finite]))
    assert np.all(got[~finite] == -np.inf)
    np.testing.assert_allclose(got[finite], want[finite], rtol=RTOL, atol=ATOL)


def assert_weights_close(got, want):
    got = np.asarray(got, dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    assert np.all(got[want == 0.0] == 0.0)  # no weight allowed means exactly 0


# ----------------------------------------------------------------------------------------------
# Registry and parameters
# ----------------------------------------------------------------------------------------------


def test_registry_names():
    expected = {"dot", "scaled_dot", "general", "additive", "concat", "concat_shared", "location"}
    assert set(SCORES) == expected
    assert set(SCORE_NAMES) == expected | {"none"}
    assert build_score("none", DQ, DK) is None


@pytest.mark.parametrize("name, query_dim, key_dim, options", CASES)
def test_parameter_names_and_shapes(name, query_dim, key_dim, options):
    module = build_score(name, query_dim, key_dim, **options)
    query, keys = make_data(query_dim, key_dim, seed=0)
    params = init_shapes(module, query, keys)
    got = {k: tuple(v.shape) for k, v in params.get("params", {}).items()}
    assert got == expected_shapes(name, query_dim, key_dim, options)


# ----------------------------------------------------------------------------------------------
# Numerics against the reference
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, query_dim, key_dim, options", CASES)
def test_scores_match_reference(name, query_dim, key_dim, options):
    module, params, p = setup_case(name, query_dim, key_dim, options)
    for seed in (1, 2):
        query, keys = make_data(query_dim, key_dim, seed)
        got = score_one(module, params, query, keys)
        assert got.shape == (S,) and got.dtype == jnp.float32
        want = reference_scores(name, options, p, query, keys)
        assert_scores_close(got, want)
        # And through the masked softmax: equal weights, exactly 0 where none is allowed.
        assert_weights_close(masked_softmax(got, MASK), ref.masked_softmax(want, MASK))


@pytest.mark.parametrize("name, query_dim, key_dim, options", CASES)
def test_batched_equals_loop_over_examples(name, query_dim, key_dim, options):
    module, params, p = setup_case(name, query_dim, key_dim, options)
    queries, keys = make_data(query_dim, key_dim, seed=3, batch=BATCH)
    got = np.asarray(score_batch(module, params, queries, keys))
    assert got.shape == (BATCH, S)
    for b in range(BATCH):
        np.testing.assert_allclose(
            got[b], score_one(module, params, queries[b], keys[b]), rtol=1e-6, atol=1e-6
        )
        assert_scores_close(got[b], reference_scores(name, options, p, queries[b], keys[b]))


# Gradients: every score once, with its bias where it has one (the no-bias variants share the
# same code path minus one addition), plus normalize, key_identity and both location regimes.
GRAD_CASES = [
    case
    for case in CASES
    if case.id
    in (
        "dot",
        "scaled_dot",
        "general",
        "additive-bias",
        "additive-normalize",
        "concat-bias",
        "concat-key_identity-bias",
        "concat_shared-bias",
        "location-exact",
        "location-long",
    )
]


@pytest.mark.parametrize("name, query_dim, key_dim, options", GRAD_CASES)
def test_gradients_match_reference_finite_differences(name, query_dim, key_dim, options):
    """jax.grad of a loss through score + attend vs central differences of the reference loss.

    One direction per parameter, one for the query, one for the keys and one for all at once.
    """
    module, params, p = setup_case(name, query_dim, key_dim, options)
    query, keys = make_data(query_dim, key_dim, seed=4)
    probe = np.random.default_rng(5).normal(size=key_dim)
    value, (g_params, g_query, g_keys) = loss_and_grads(
        module, params, query, keys, MASK, probe.astype(np.float32)
    )
    inputs = {**p, "query": query.astype(np.float64), "keys": keys.astype(np.float64)}
    grads = {k: np.asarray(v, np.float64) for k, v in g_params.get("params", {}).items()}
    grads.update(query=np.asarray(g_query, np.float64), keys=np.asarray(g_keys, np.float64))
    assert all(np.all(np.isfinite(g)) for g in grads.values())

    def loss_at(x):
        pp = {k: v for k, v in x.items() if k not in ("query", "keys")}
        return reference_loss(name, options, pp, x["query"], x["keys"], MASK, probe)

    np.testing.assert_allclose(float(value), loss_at(inputs), rtol=1e-5, atol=1e-5)
    rng = np.random.default_rng(6)
    eps = 1e-5
    directions = [[k] for k in inputs] + [list(inputs)]
    for names in directions:
        u = {
            k: (rng.normal(size=np.shape(v)) if k in names else np.zeros(np.shape(v)))
            for k, v in inputs.items()
        }
        plus = loss_at({k: inputs[k] + eps * u[k] for k in inputs})
        minus = loss_at({k: inputs[k] - eps * u[k] for k in inputs})
        numeric = (plus - minus) / (2 * eps)
        analytic = sum(float(np.sum(grads[k] * u[k])) for k in inputs)
        assert analytic == pytest.approx(numeric, rel=1e-3, abs=1e-4), names


# ----------------------------------------------------------------------------------------------
# Keys are projected once per sequence
# ----------------------------------------------------------------------------------------------

PREPARED_CASES = [
    pytest.param("general", {}, lambda p, K: K @ p["W"].T, (S, DQ), id="general"),
    pytest.param(
        "additive",
        {"attn_dim": A, "zero_v": False},
        lambda p, K: K @ p["W_k"],
        (S, A),
        id="additive",
    ),
    pytest.param("concat", {"attn_dim": A}, lambda p, K: K @ p["W_a"][DQ:], (S, A), id="concat"),
    pytest.param(
        "concat", {"key_identity": True}, lambda p, K: K, (S, DK), id="concat-key_identity"
    ),
]


@pytest.mark.parametrize("name, options, projection, shape", PREPARED_CASES)
def test_prepare_projects_keys_once(name, options, projection, shape):
    """`prepare(keys)` holds the key projection; the per-step call needs only the query."""
    module, params, p = setup_case(name, DQ, DK, options)
    _, keys = make_data(DQ, DK, seed=7)
    prepared = module.apply(params, keys, method=_prepare)
    assert prepared.shape == shape
    np.testing.assert_allclose(prepared, projection(p, keys.astype(np.float64)), atol=ATOL)
    queries, _ = make_data(DQ, DK, seed=8, batch=2)
    for query in queries:  # the same prepared value serves every decoder step
        got = module.apply(params, query, prepared, method=_call)
        assert_scores_close(got, reference_scores(name, options, p, query, keys))


def test_prepare_concat_shared_shape():
    module, params, p = setup_case("concat_shared", D, D, {"attn_dim": A_SHARED})
    _, keys = make_data(D, D, seed=7)
    prepared = module.apply(params, keys, method=_prepare)
    assert prepared.shape == (S, A_SHARED)
    np.testing.assert_allclose(prepared, keys.astype(np.float64) @ p["W"], atol=ATOL)


# ----------------------------------------------------------------------------------------------
# Location score: source longer than max_source_len
# ----------------------------------------------------------------------------------------------


def test_location_longer_source_warns_and_gets_no_weight_past_max():
    s_max = S - 3
    module, params, p = setup_case("location", DQ, DK, {"max_source_len": s_max})
    query, keys = make_data(DQ, DK, seed=9)
    with pytest.warns(UserWarning, match="max_source_len"):
        scores = module.apply(params, query, keys, method=_run)  # not jitted: warns every trace
    mask = np.ones(S, dtype=bool)
    weights = np.asarray(masked_softmax(scores, mask))
    assert np.all(weights[s_max:] == 0.0)
    assert weights[:s_max].sum() == pytest.approx(1.0, abs=1e-6)
    assert_weights_close(weights, ref.masked_softmax(ref.location(query, S, p["W_a"]), mask))


@pytest.mark.filterwarnings("ignore:location score:UserWarning")
def test_location_no_weight_past_max_even_when_only_those_positions_are_valid():
    """Positions >= S_max get no weight whatever the mask, e.g. a left-padded source."""
    s_max = S - 3
    module, params, p = setup_case("location", DQ, DK, {"max_source_len": s_max})
    query, keys = make_data(DQ, DK, seed=9)
    mask = np.arange(S) >= s_max  # every valid position lies past S_max
    weights = np.asarray(masked_softmax(score_one(module, params, query, keys), mask))
    want = ref.masked_softmax(ref.location(query, S, p["W_a"]), mask)
    assert np.all(want == 0.0)
    assert np.all(weights == 0.0), f"weights past S_max={s_max}: {weights[s_max:]}"


@pytest.mark.parametrize("s_max", [S, S + 3])
def test_location_no_warning_when_source_fits(s_max):
    module, params, _ = setup_case("location", DQ, DK, {"max_source_len": s_max})
    query, keys = make_data(DQ, DK, seed=9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module.apply(params, query, keys, method=_run)


# ----------------------------------------------------------------------------------------------
# Initialisation and errors
# ----------------------------------------------------------------------------------------------


def test_additive_default_starts_uniform():
    """Default `zero_v=True`: v = 0, so all scores are equal and attention starts uniform."""
    module = build_score("additive", DQ, DK, attn_dim=A)
    query, keys = make_data(DQ, DK, seed=10)
    params = jax.jit(lambda q, k: module.init(jax.random.key(0), q, k, method=_run))(query, keys)
    assert np.all(np.asarray(params["params"]["v"]) == 0.0)
    scores = np.asarray(score_one(module, params, query, keys))
    assert np.all(scores == scores[0])
    weights = np.asarray(masked_softmax(scores, MASK))
    np.testing.assert_allclose(weights[MASK], 1.0 / MASK.sum(), rtol=1e-6)
    assert np.all(weights[~MASK] == 0.0)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ScoreError) as info:
        build_score("bahdanau-ish", DQ, DK)
    message = str(info.value)
    assert "bahdanau-ish" in message
    for name in ("dot", "scaled_dot", "general", "additive", "concat", "concat_shared", "location"):
        assert name in message


@pytest.mark.parametrize("name", ["dot", "scaled_dot", "concat_shared"])
def test_mismatched_sizes_raise(name):
    with pytest.raises(ScoreError) as info:
        build_score(name, 13, 22, attn_dim=A)
    message = str(info.value)
    assert re.search(r"\b13\b", message) and re.search(r"\b22\b", message), message


@pytest.mark.parametrize("name", ["general", "additive", "concat", "location"])
def test_mismatched_sizes_allowed(name):
    assert build_score(name, 13, 22, attn_dim=A) is not None


@pytest.mark.parametrize("zero_v", [None, True])
def test_additive_normalize_needs_nonzero_v(zero_v):
    options = {"attn_dim": A, "normalize": True}
    if zero_v is not None:
        options["zero_v"] = zero_v
    with pytest.raises(ScoreError):
        build_score("additive", DQ, DK, **options)


def test_one_options_dict_serves_every_score():
    options = {
        "attn_dim": A,
        "bias": True,
        "zero_v": False,
        "normalize": False,
        "key_identity": False,
        "max_source_len": S,
    }
    for name in SCORE_NAMES:
        dims = (D, D) if name in ("dot", "scaled_dot", "concat_shared") else (DQ, DK)
        module = build_score(name, *dims, **options)
        assert (module is None) == (name == "none")
