"""ASLR: the search of Algorithm 1 on scripted costs, the epochs, and the per-group draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrgym.agents import EpisodeStart, make_agent, make_env, run_episode
from lrgym.agents.aslr import ASLRAgent, ASLRSearch, leading_digit


def centres_after(search, costs):
    path = []
    for cost in costs:
        search.update(cost)
        path.append(search.centre)
    return path


@pytest.mark.parametrize(
    "value, expected",
    [(0.15, (1, -1)), (0.3, (3, -1)), (0.009, (9, -3)), (1e-3, (1, -3)), (2.0, (2, 0)), (0.0999999999, (9, -2))],
)
def test_rate_is_kept_as_a_leading_digit(value, expected):
    assert leading_digit(value) == expected


def test_first_cost_only_initialises_the_best_cost():
    search = ASLRSearch(0.1)
    search.update(0.9)
    assert search.centre == 0.1 and search.best_cost == 0.9


def test_failures_walk_up_1_down_2_up_3_down_4():
    search = ASLRSearch(0.1)
    search.update(0.5)
    path = centres_after(search, [0.6] * 10)
    assert path == [0.2, 0.1, 0.09, 0.1, 0.2, 0.3, 0.2, 0.1, 0.09, 0.08]


def test_spread_is_the_power_of_ten_of_the_centre():
    search = ASLRSearch(0.1)
    search.update(0.5)
    spreads = []
    for _ in range(3):
        search.update(0.6)
        spreads.append(search.spread)
    assert spreads == [0.1, 0.1, 0.01]  # at 0.2, 0.1, 0.09


def test_improvement_keeps_the_centre_and_restarts_the_pattern():
    search = ASLRSearch(0.1)
    search.update(0.5)
    centres_after(search, [0.6, 0.6, 0.6])  # 0.2, 0.1, 0.09
    assert centres_after(search, [0.4]) == [0.09]
    assert search.best_cost == 0.4
    assert centres_after(search, [0.45, 0.45, 0.45, 0.45]) == [0.1, 0.09, 0.08, 0.09]


def test_a_tie_moves_nothing():
    search = ASLRSearch(0.1)
    search.update(0.5)
    centres_after(search, [0.6])  # 0.2, one step of the up-run of length 1
    assert centres_after(search, [0.5, 0.5]) == [0.2, 0.2]
    assert centres_after(search, [0.6]) == [0.1]  # the pattern goes on where it was


def test_walk_stays_within_the_bounds():
    search = ASLRSearch(0.2, lr_min=0.1, lr_max=0.3)
    search.update(0.5)
    assert centres_after(search, [0.6] * 10) == [0.3, 0.2, 0.1, 0.2, 0.3, 0.3, 0.2, 0.1, 0.1, 0.1]


def tiny_agent(task, **kwargs):
    env = make_env(task, "lr")
    obs, info = env.reset(seed=0)
    agent = ASLRAgent(**kwargs)
    agent.reset(EpisodeStart(env.task, info["initial_lr"], 0, env))
    return agent, info


def test_epoch_cost_is_read_at_the_first_decision_at_or_after_each_epoch_end(tiny_task):
    agent, _ = tiny_agent(tiny_task.replace(steps=60), initial_lr=0.1, epoch_steps=25)
    accuracies = {0: 0.1, 10: 0.2, 20: 0.3, 30: 0.5, 40: 0.1, 50: 0.4, 60: 0.2}
    for step, accuracy in accuracies.items():
        agent.act(np.zeros(8, np.float32), {"step": step, "val_accuracy": accuracy, "val_loss": 1.0})
        if step == 30:  # first epoch end (25): its error 0.5 only initialises the best cost
            assert agent.search.best_cost == pytest.approx(0.5) and agent.search.centre == 0.1
    # The second epoch ends at 50: error 0.6 > 0.5, one step up. Steps 10, 20, 40, 60 are not read.
    assert agent.search.centre == 0.2 and agent.search.best_cost == pytest.approx(0.5)


def test_cost_can_be_the_validation_loss(tiny_task):
    agent, _ = tiny_agent(tiny_task, initial_lr=0.1, epoch_steps=10, cost="val_loss")
    for step, loss in [(10, 2.0), (20, 2.5)]:
        agent.act(np.zeros(8, np.float32), {"step": step, "val_accuracy": 0.9, "val_loss": loss})
    assert agent.search.centre == 0.2


def test_default_epoch_is_one_pass_over_the_training_split_capped_at_the_budget(tiny_task):
    task = tiny_task.replace(steps=1000, batch_size=100)
    agent, _ = tiny_agent(task)
    assert agent.epoch_length == len(make_env(task, "lr").dataset.train) // 100
    agent, _ = tiny_agent(tiny_task)  # batch 32: one pass is more than the 40-step budget
    assert agent.epoch_length == tiny_task.steps


def test_per_group_draws_are_uniform_around_the_centre(tiny_task):
    agent, _ = tiny_agent(tiny_task, initial_lr=0.03)
    draws = np.array([agent.draw_rates(step, 0.03, 6) for step in range(4000)])
    assert draws.min() >= 0.025 and draws.max() <= 0.035
    standard_error = 0.01 / math.sqrt(12) / math.sqrt(draws.size)
    assert abs(draws.mean() - 0.03) < 4 * standard_error
    assert len(set(draws[0])) == 6  # every group draws its own rate
    assert np.all(np.abs(draws.mean(axis=0) - 0.03) < 4 * 0.01 / math.sqrt(12) / math.sqrt(4000))


def test_trainee_steps_use_fresh_draws_and_the_batch_stream_is_untouched(tiny_task):
    rates = []
    aslr = make_agent("aslr", tiny_task, initial_lr=0.003, epoch_steps=10)

    class Recorder:
        action_mode = "lr"

        def reset(self, start):
            aslr.reset(start)
            start.env.trainee.optimizer.register_step_pre_hook(
                lambda optimizer, args, kwargs: rates.append([g["lr"] for g in optimizer.param_groups])
            )
            self.env = start.env

        def act(self, observation, info):
            return aslr.act(observation, info)

    recorder = Recorder()
    run_episode(recorder, tiny_task, seed=1)
    rates = np.array(rates)
    assert len(np.unique(rates)) == rates.size  # a fresh draw per group and per step
    constant_env = make_env(tiny_task, "lr")
    run_episode(make_agent("constant", tiny_task), constant_env, seed=1)
    # ASLR drew from its own generator: the trainee drew exactly the batches a constant run drew.
    assert recorder.env.trainee._batch_generator.get_state().equal(
        constant_env.trainee._batch_generator.get_state()
    )
