"""Property: whatever keys and values a user gives, validation answers with a config or one ConfigError line.

Random keys (every real key, group nodes, made-up and nested ones) get random values (None, booleans, integers
far beyond 64 bits, floats with NaN and infinities, text, lists, mappings) on configs composed by Hydra with
several options. Applied by Hydra's own override code (as `key=`, `+key=` or `++key=`), a value the schema's
types refuse fails there; what passes goes to `mnist_hydra.config.validate`. Either way the only acceptable outcomes are a
validated config whose numbers TensorFlow and NumPy can take, or an error the boundary prints as one line.
A second property sends random override strings through Hydra's own compose, parser included.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.types import Override, OverrideType, ValueType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig

from mnist_hydra.apps.boundary import describe, user_error
from mnist_hydra.config import MAX_INT, MAX_SEED, Config, validate
from mnist_hydra.errors import UserError

BASES = [
    (),
    ("model=cnn_deep", "optimizer=sgd"),
    ("model=mlp", "optimizer=adamw", "trainer=fastest"),
    ("data=fashion_mnist", "optimizer=rmsprop", "trainer=fast"),
]
GROUPS = ["data", "model", "optimizer", "trainer"]
# Bounded and reproducible: the same 80 examples on every run, no example database written to disk.
PROPERTY = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4), st.dictionaries(st.text(max_size=6), scalars, max_size=3))
names = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)
KINDS = [OverrideType.CHANGE, OverrideType.ADD, OverrideType.FORCE_ADD]  # key=, +key=, ++key=


@pytest.fixture(scope="module")
def bases() -> list[DictConfig]:
    """The composed configs the examples start from (composing costs ~0.2 s: once each)."""
    from hydra import compose, initialize_config_module

    from mnist_hydra.config import store_schemas

    store_schemas()
    with initialize_config_module(config_module="mnist_hydra.conf", version_base="1.3"):
        return [compose(config_name="config", overrides=list(overrides)) for overrides in BASES]


def leaf_keys(cfg: DictConfig) -> list[str]:
    keys = []
    for key, value in cfg.items():
        keys += [f"{key}.{leaf}" for leaf in leaf_keys(value)] if isinstance(value, DictConfig) else [str(key)]
    return keys


@st.composite
def changes(draw, base: DictConfig) -> list[tuple[str, object]]:
    """One to three (key, value) pairs: real keys, whole groups, made-up top-level and nested keys."""
    real = leaf_keys(base)
    key = st.one_of(
        st.sampled_from(real),
        st.sampled_from(GROUPS + ["seed", "resume"]),
        st.builds(lambda group, name: f"{group}.{name}", st.sampled_from(GROUPS), names),
        names,
        st.builds(lambda a, b: f"{a}.{b}", st.sampled_from(real), names),
    )
    pairs = draw(st.lists(st.tuples(key, values), min_size=1, max_size=3))
    # plugins=[...] imports modules by name: give it names no module has, so no random import runs.
    return [(k, [f"no_such_plugin_{draw(names)}"] if k == "plugins" else v) for k, v in pairs]


def assert_one_line(err: BaseException) -> None:
    """The boundary shows `err` as one line (it is not a bug that would print a traceback)."""
    cause = user_error(err)
    assert cause is not None, f"{type(err).__name__} would print a traceback: {err}"
    line = describe(cause)
    assert line and "\n" not in line, repr(line)


def assert_usable(config: Config) -> None:
    """Every number of a validated config is one TensorFlow and NumPy take: finite, within 32 bits."""
    assert 0 <= config.seed <= MAX_SEED
    for group in (config.data, config.model, config.optimizer, config.trainer):
        for spec in dataclasses.fields(group):
            value = getattr(group, spec.name)
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, float):
                    assert math.isfinite(item), (spec.name, value)
                elif isinstance(item, int) and not isinstance(item, bool):
                    assert abs(item) <= MAX_INT, (spec.name, value)


@PROPERTY
@given(data=st.data())
def test_random_keys_and_values_validate_or_fail_in_one_line(bases, data):
    base = data.draw(st.sampled_from(bases))
    cfg = copy.deepcopy(base)
    overrides = [
        Override(
            type=data.draw(st.sampled_from(KINDS)),
            key_or_group=key,
            value_type=ValueType.ELEMENT,
            _value=value,
            input_line=f"{key}={value!r}",
        )
        for key, value in data.draw(changes(base))
    ]
    try:
        # Hydra's own code for `key=value`, `+key=value` and `++key=value`, with values a parser could not make.
        ConfigLoaderImpl._apply_overrides_to_config(overrides, cfg)
    except Exception as err:  # refused by the schema's types, or by Hydra
        assert_one_line(err)
        return
    try:
        config = validate(cfg)
    except UserError as err:
        assert_one_line(err)
        return
    assert_usable(config)


override_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(
        [
            "nan",
            "inf",
            "-inf",
            "null",
            "true",
            "[1,2]",
            "{a: 1}",
            "''",
            "1e400",
            "[",
            "]",
            "'x",
            "a b",
            "=",
            "${oops}",
            "${now:}",
            "0x10",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=10),
)


@settings(
    max_examples=15,  # each composes a config with Hydra (~0.2 s)
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_override_strings_through_hydra_compose(bases, data):
    from hydra import compose, initialize_config_module

    key = data.draw(
        st.one_of(
            st.sampled_from(leaf_keys(bases[0])),
            st.sampled_from(GROUPS),
            st.builds(lambda g, n: f"{g}.{n}", st.sampled_from(GROUPS), names),
        )
    )
    if key == "plugins":
        return
    override = f"{data.draw(st.sampled_from(['', '+', '++']))}{key}={data.draw(override_values)}"
    try:
        with initialize_config_module(config_module="mnist_hydra.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=[override])
        config = validate(cfg)
    except Exception as err:
        assert_one_line(err)
        return
    assert_usable(config)
