"""Agents that are optimizers (Prodigy, Schedule-Free): an agent spec's [task] overrides."""

from __future__ import annotations

import pytest
import torch

from lrgym.agents import make_agent, make_env, run_episode
from lrgym.evaluation.evaluate import evaluate, read_results, write_evaluation
from lrgym.runners.options import RunOptions
from lrgym.tasks.specs import load_agent_spec

SWITCHED = {"prodigy": "Prodigy", "schedulefree": "AdamWScheduleFree"}


def test_specs_declare_the_optimizer_they_switch_to():
    assert load_agent_spec("prodigy").task_overrides == {
        "optimizer": "prodigy", "optimizer_kwargs": {}, "lr_max": 1.0
    }
    assert load_agent_spec("schedulefree").task_overrides["optimizer"] == "schedulefree-adamw"
    assert load_agent_spec("constant").task_overrides == {}


def test_an_unknown_task_field_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "bad.toml").write_text('kind = "schedule"\nscheduler = "ConstantLR"\n[task]\noptimiser = "sgd"\n')
    monkeypatch.setattr("lrgym.tasks.specs.agents_dir", lambda: tmp_path)
    with pytest.raises(ValueError, match=r"unknown task field\(s\) \['optimiser'\].*valid: .*optimizer"):
        load_agent_spec("bad")


def record_start(agent, task, seed):
    """Run an episode; return the trainee's initial weights, its first training batch and the result."""
    seen = {}

    class Recorder:
        action_mode = agent.action_mode
        task_overrides = getattr(agent, "task_overrides", None)

        def reset(self, start):
            agent.reset(start)
            trainee = start.env.trainee
            seen["weights"] = {k: v.clone() for k, v in trainee.model.state_dict().items()}
            seen["optimizer"] = type(trainee.optimizer).__name__

            def first_batch(module, args):  # the first forward after reset is the first training step
                seen.setdefault("first_batch", args[0].clone())

            trainee.model.register_forward_pre_hook(first_batch)

        def act(self, observation, info):
            return agent.act(observation, info)

    return seen, run_episode(Recorder(), task, seed)


@pytest.mark.parametrize("seed", [0, 3])
def test_switching_the_optimizer_keeps_the_seeds_paired(seed, tiny_task):
    reference, reference_result = record_start(make_agent("constant", tiny_task), tiny_task, seed)
    assert reference["optimizer"] == "Adam"
    for name, optimizer_class in SWITCHED.items():
        seen, result = record_start(make_agent(name, tiny_task), tiny_task, seed)
        assert seen["optimizer"] == optimizer_class
        assert result.task.optimizer == load_agent_spec(name).task_overrides["optimizer"]
        for key, weights in reference["weights"].items():
            torch.testing.assert_close(seen["weights"][key], weights, rtol=0, atol=0)
        torch.testing.assert_close(seen["first_batch"], reference["first_batch"], rtol=0, atol=0)
        assert result.initial_lr == reference_result.initial_lr  # the env's draw, not the agent's rate


def test_prodigy_runs_at_its_multiplier_of_one_even_under_a_lower_rate_bound(tiny_task):
    task = tiny_task.replace(lr_max=0.1)
    result = run_episode(make_agent("prodigy", task), task, seed=0)
    assert {row.lr for row in result.trajectory} == {1.0}
    assert result.final_info["test_loss_at_best_val"] < result.first_observation[1]  # it learned


def test_a_prebuilt_env_without_the_overrides_is_refused(tiny_task):
    env = make_env(tiny_task, "lr")
    with pytest.raises(ValueError, match="task overrides"):
        run_episode(make_agent("prodigy", tiny_task), env, seed=0)


def test_results_name_the_optimizer_that_trained(tiny_task, tmp_path):
    evaluation = evaluate(tiny_task, ["constant", "prodigy", "schedulefree"], [0], RunOptions(jobs=1, progress=False))
    write_evaluation(evaluation, tmp_path)
    rows = {row["agent"]: row for row in read_results(tmp_path / "results.csv")}
    assert {agent: row["trainee_optimizer"] for agent, row in rows.items()} == {
        "constant": "adam", "prodigy": "prodigy", "schedulefree": "schedulefree-adamw"
    }
    assert len({row["initial_lr"] for row in rows.values()}) == 1
    summary = (tmp_path / "summary.md").read_text()
    assert "`prodigy` changes the task it runs: optimizer='prodigy'" in summary
    assert "`constant` changes" not in summary


def test_a_spec_without_overrides_keeps_its_identity():
    # Step-grid choices are cached under a hash of the agent spec's dict: the one shipped
    # beside the mnist1d-mlp controller must still be found.
    from lrgym.agents.step_grid import cache_path
    from lrgym.tasks.specs import load_task_spec, project_root

    spec = load_agent_spec("step-grid")
    assert "task_overrides" not in spec.to_dict()
    shipped = cache_path(project_root() / "checkpoints" / "mnist1d-mlp-ppo", load_task_spec("mnist1d-mlp"), spec)
    assert shipped.is_file()
