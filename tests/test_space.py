"""One search-space declaration -> Optuna distributions, conditions, dependency order."""

from __future__ import annotations

import optuna
import pytest

from harness.backends.optuna import _Suggester
from harness.errors import StudyFileError
from harness.space import (
    ChoiceDistribution,
    FloatDistribution,
    IntDistribution,
    SearchParam,
    order_by_dependency,
    parse_condition,
    parse_distribution,
)
from harness.study import load_study


def test_distributions_parse_with_step_and_log():
    assert parse_distribution("k", {"int": [16, 128], "step": 16})[0] == IntDistribution(
        16, 128, 16
    )
    dist, _ = parse_distribution("k", {"float": [1e-5, 1e-2], "log": True})
    assert dist == FloatDistribution(1e-5, 1e-2, None, True)
    assert parse_distribution("k", {"choice": [150, 300]})[0] == ChoiceDistribution((150, 300))


@pytest.mark.parametrize(
    "table",
    [
        {"int": [1.5, 3]},
        {"int": [1]},
        {"float": [0, 1], "step": -1},
        {"choice": [[1]]},
        {"int": [1, 2], "float": [1, 2]},
        {"int": [1, 4], "step": 1, "log": True},
    ],
)
def test_bad_distributions_are_refused(table):
    with pytest.raises(StudyFileError):
        parse_distribution("[model].x", table)


def test_condition_is_parsed_not_evaluated():
    cond = parse_condition("[model].units_2", "dense_layers >= 2", "model")
    assert (cond.param, cond.op, cond.value) == ("model.dense_layers", ">=", 2)
    assert cond.holds({"model.dense_layers": 3}) and not cond.holds({"model.dense_layers": 1})
    assert not cond.holds({})
    with pytest.raises(StudyFileError):
        parse_condition("[model].x", "__import__('os').system('true')", "model")


def test_dependency_order_puts_parents_first():
    child = SearchParam(
        "model.units_2", IntDistribution(1, 2), parse_condition("w", "layers >= 2", "model")
    )
    parent = SearchParam("model.layers", IntDistribution(1, 3))
    assert [p.name for p in order_by_dependency([child, parent], {})] == [
        "model.layers",
        "model.units_2",
    ]


def test_space_translates_to_optuna_with_conditions(write_study, plugins):
    spec = load_study(
        write_study("""
        [study]
        name = "space"
        [dataset]
        name = "digits"
        [model]
        name = "dense"
        units_2 = {int = [16, 64], step = 16, when = "dense_layers >= 2"}
        dense_layers = {int = [1, 2]}
        activation = {choice = ["relu", "tanh"]}
        [train]
        learning_rate = {float = [1e-4, 1e-2], log = true}
        epochs = 3
    """),
        plugins,
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen_layers = set()
    for _ in range(20):
        trial = study.ask()
        values = spec.space.sample(_Suggester(trial))
        study.tell(trial, 0.0)
        dists = trial.distributions
        assert dists["model.activation"] == optuna.distributions.CategoricalDistribution(
            ["relu", "tanh"]
        )
        assert dists["train.learning_rate"].log is True
        assert values["train.epochs"] == 3
        layers = values["model.dense_layers"]
        seen_layers.add(layers)
        assert ("model.units_2" in values) == (layers >= 2)
        if layers >= 2:
            assert values["model.units_2"] % 16 == 0
            assert dists["model.units_2"] == optuna.distributions.IntDistribution(16, 64, step=16)
    assert seen_layers == {1, 2}


def _median_study(write_study, plugins, train: str, optuna_table: str):
    """A study with the median pruner, these [train] and extra [optuna] lines."""
    return load_study(
        write_study(f"""
        [study]
        name = "pruned"
        [optuna]
        pruner = "median"
        {optuna_table}
        [dataset]
        name = "digits"
        [model]
        name = "dense"
        [train]
        {train}
    """),
        plugins,
    )


@pytest.mark.parametrize(
    ("train", "optuna_table", "expected"),
    [
        ("epochs = 4", "", 2),  # half the trial's epochs
        ("epochs = 1", "", 1),  # never 0
        ("epochs = {int = [6, 14]}", "", 3),  # half the fewest epochs a trial can draw
        ("epochs = {choice = [9, 5]}", "", 2),
        ("batch_size = 16", "", 2),  # the default 5 epochs
        ("epochs = 12", "warmup_epochs = 0", 0),  # the study's own value wins
    ],
)
def test_median_pruner_warms_up_for_half_the_epochs(
    write_study, plugins, train, optuna_table, expected
):
    from harness.backends.optuna import make_pruner, warmup_epochs

    spec = _median_study(write_study, plugins, train, optuna_table)
    assert warmup_epochs(spec) == expected
    assert make_pruner(spec)._wrapped_pruner._n_warmup_steps == expected


def _pruned_at(write_study, plugins, curves: list[list[float]], optuna_table: str = "") -> list:
    """Feed finished trials' curves and then a last trial's, epoch by epoch, to the study's
    pruner; the epochs at which it would stop that last trial."""
    from harness.backends.optuna import make_pruner

    spec = _median_study(write_study, plugins, "epochs = 6", f"startup_trials = 1\n{optuna_table}")
    study = optuna.create_study(direction="maximize", pruner=make_pruner(spec))
    *finished, last = curves
    for curve in finished:
        trial = study.ask()
        for epoch, value in enumerate(curve):
            trial.report(value, epoch)
        study.tell(trial, curve[-1])
    trial = study.ask()
    stops = []
    for epoch, value in enumerate(last):
        trial.report(value, epoch)
        if trial.should_prune():
            stops.append(epoch)
    return stops


def test_optuna_reporter_never_prunes_at_the_last_epoch(write_study, plugins):
    """A trial below the median at its last epoch has trained fully: it completes (and can be
    the best) instead of being thrown away as pruned. Its value is still reported."""
    from harness.backends.optuna import OptunaReporter
    from harness.errors import TrialPruned

    class AlwaysPrune(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    spec = _median_study(write_study, plugins, "epochs = 2", "")
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    trial = study.ask()
    reporter = OptunaReporter(trial, spec)
    reporter.report(1, {spec.objectives[0].metric: 0.5}, last=True)
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {1: 0.5}
    with pytest.raises(TrialPruned, match="epoch 1"):
        reporter.report(0, {spec.objectives[0].metric: 0.4})


def test_median_pruner_spares_a_trial_below_the_median_while_it_improves(write_study, plugins):
    finished = [[0.90, 0.93, 0.95, 0.96, 0.97, 0.98]] * 2
    improving = [0.50, 0.60, 0.70, 0.80, 0.85, 0.90]
    assert _pruned_at(write_study, plugins, [*finished, improving]) == []
    # With no patience (0) the median is asked whenever an epoch is not the trial's best.
    assert _pruned_at(write_study, plugins, [*finished, improving], "patience_epochs = 0") == []
    stalled = [0.50, 0.60, 0.70, 0.69, 0.68, 0.67]
    assert _pruned_at(write_study, plugins, [*finished, stalled]) == [4, 5]
    assert _pruned_at(write_study, plugins, [*finished, stalled], "patience_epochs = 0") == [
        3,
        4,
        5,
    ]
    # Above the median a stalled trial goes on.
    leading = [0.95, 0.97, 0.99, 0.985, 0.984, 0.983]
    assert _pruned_at(write_study, plugins, [*finished, leading]) == []
