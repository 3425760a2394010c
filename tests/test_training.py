"""The training loop: it learns, it is reproducible, it stops when asked and survives divergence."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from dvae_engine.data import load_dataset
from dvae_engine.training import (
    TrainConfig,
    TrainingDivergedError,
    learning_rate,
    resolve_device,
    train,
)

SMALL = dict(dataset="digits", hidden_units=32, latent_dim=4, device="cpu")


def test_same_seed_same_numbers_and_another_seed_differs(digits):
    config = TrainConfig(**SMALL, objective="diwae", noise_level=0.1, num_samples=3, num_corruptions=2, epochs=2)
    a, b = train(config, digits), train(config, digits)
    c = train(config.replace(seed=1), digits)
    assert a.history["train_objective"] == b.history["train_objective"]
    assert a.history["valid_iwae"] == b.history["valid_iwae"]
    assert a.history["train_objective"] != c.history["train_objective"]


def test_history_and_callbacks_report_every_epoch(digits):
    reports, batches = [], []
    config = TrainConfig(**SMALL, objective="dvae", noise_level=0.1, epochs=3)
    result = train(config, digits, on_epoch=reports.append, on_batch=batches.append, batch_report_every=4)
    assert [r.epoch for r in reports] == [1, 2, 3] == result.history["epoch"]
    assert all(r.seconds > 0 and r.examples_per_sec > 0 and math.isfinite(r.valid_elbo) for r in reports)
    assert reports[0].valid_iwae is None  # only importance-weighted runs report a validation IWAE bound
    assert batches and batches[-1].batch == batches[-1].batches_per_epoch == math.ceil(1197 / 100)
    assert result.status == "finished" and not result.model.training


def test_stop_event_is_honoured_within_one_batch(digits):
    stop = threading.Event()
    seen = []

    def on_batch(progress):
        seen.append(progress.batch)
        if progress.batch == 3:
            stop.set()

    config = TrainConfig(**SMALL, objective="vae", noise="none", noise_level=0.0, epochs=50)
    result = train(config, digits, on_batch=on_batch, stop_event=stop, batch_report_every=1)
    assert result.status == "stopped" and result.epochs_done == 0
    steps = {int(s["step"]) for s in result.optimizer.state_dict()["state"].values()}
    assert steps == {3}  # no batch ran after the request


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_good_state(digits):
    config = TrainConfig(**SMALL, objective="vae", noise="none", noise_level=0.0, epochs=30, lr=1e6)
    with pytest.raises(TrainingDivergedError, match="non-finite") as info:
        train(config, digits)
    result = info.value.result
    assert result.status == "diverged"
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert all(math.isfinite(v) for v in result.history["train_objective"])


def test_short_run_on_real_binarized_mnist_lowers_the_objective(data_dir):
    data = load_dataset("binarized-mnist", data_dir).subset(max_train=5000)
    config = TrainConfig(dataset="binarized-mnist", objective="dvae", noise_level=0.05, epochs=3,
                         max_valid_examples=1000, device="cpu")
    result = train(config, data)
    objective, valid = result.history["train_objective"], result.history["valid_elbo"]
    assert objective[2] > objective[0] + 10  # nats: the first epochs gain a lot
    assert valid[2] > valid[0]
    assert -250 < valid[2] < -100


def test_gru_encoder_and_gaussian_likelihood_train(digits):
    config = TrainConfig(**{**SMALL, "latent_dim": 2}, encoder="gru", objective="dvae", noise_level=0.1, epochs=2)
    result = train(config, digits)
    assert result.history["train_objective"][1] > result.history["train_objective"][0]
    fake_frey = digits.subset()
    fake_frey.likelihood = "gaussian"
    gaussian = TrainConfig(**SMALL, objective="dvae", noise="gaussian", noise_level=0.05, epochs=2)
    out = train(gaussian, fake_frey)
    assert all(math.isfinite(v) for v in out.history["valid_elbo"])


def test_dynamic_binarization_resamples_each_epoch_without_touching_the_callers_dataset(digits):
    dynamic = load_dataset("digits", binarization="dynamic")
    config = TrainConfig(**SMALL, binarization="dynamic", objective="vae", noise="none", noise_level=0.0, epochs=2)
    before = dynamic.train.clone()
    dynamic_run = train(config, dynamic)
    assert torch.equal(dynamic.train, before)  # the caller's dataset is not modified
    static_run = train(config.replace(binarization="static"), digits)
    assert dynamic_run.history["train_objective"] != static_run.history["train_objective"]
    copy = dynamic.subset()
    copy.resample_train(torch.Generator().manual_seed(0))
    assert not torch.equal(copy.train, before) and torch.equal(dynamic.train, before)


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(objective="vae", noise="salt-pepper", noise_level=0.1), "uses no corruption"),
        (dict(noise_level=-1.0), ">= 0"),
        (dict(num_samples=0), "num_samples"),
        (dict(num_corruptions=2.5), "num_corruptions"),
        (dict(lr=float("nan")), "lr"),
        (dict(dataset="cifar"), "dataset"),
        (dict(encoder="lstm"), "encoder"),
        (dict(activation="gelu"), "activation"),
        (dict(lr_schedule="warm"), "lr_schedule"),
    ],
)
def test_invalid_configs_are_rejected_with_the_reason(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{**SMALL, "objective": "dvae", **changes})


def test_model_names_follow_the_paper():
    assert TrainConfig(objective="vae", noise="none", noise_level=0).model_name == "VAE"
    assert TrainConfig(objective="dvae", noise_level=0.0).model_name == "VAE"  # DVAE at noise 0 is a VAE
    assert TrainConfig(objective="dvae", noise_level=0.05).model_name == "DVAE"
    assert TrainConfig(objective="diwae", noise_level=0.05, num_samples=5).model_name == "DIWAE"
    assert TrainConfig(objective="iwae", noise="none", noise_level=0, num_samples=5).model_name == "IWAE"
    assert "5%" in TrainConfig(objective="dvae", noise_level=0.05).describe()


def test_learning_rate_schedules():
    config = TrainConfig(lr=1e-3, lr_schedule="iwae")
    # Burda et al.: 1 epoch at lr, 3 at lr·10^(-1/7), 9 at lr·10^(-2/7), ...
    assert [round(learning_rate(config, e) / 1e-3, 4) for e in (0, 1, 3, 4, 12, 13)] == [
        1.0, round(10 ** (-1 / 7), 4), round(10 ** (-1 / 7), 4), round(10 ** (-2 / 7), 4),
        round(10 ** (-2 / 7), 4), round(10 ** (-3 / 7), 4)]
    cosine = TrainConfig(lr=1e-3, lr_schedule="cosine", epochs=11)
    assert learning_rate(cosine, 0) == pytest.approx(1e-3) and learning_rate(cosine, 10) == pytest.approx(1e-4)
    assert learning_rate(TrainConfig(lr=2e-3), 500) == 2e-3


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.slow
def test_compiled_objective_trains_like_the_eager_one(digits):
    """torch.compile changes how the objective is computed, not what: same draws, same numbers (to rounding)."""
    config = TrainConfig(**SMALL, objective="diwae", noise_level=0.1, num_samples=3, epochs=2)
    eager = train(config, digits)
    compiled = train(config.replace(compile=True), digits)
    assert compiled.message == ""  # it really compiled (no fallback)
    assert compiled.history["train_objective"] == pytest.approx(eager.history["train_objective"], abs=1e-2)


def test_the_papers_data_augmentation_baseline_is_vae_or_iwae_re_binarized_every_pass(digits):
    """Sec. 4: a fresh binarization of the grey-level images each time they are used; named as such."""
    from dvae_engine.data import load_dataset
    from dvae_engine.paper import DATA_AUGMENTATION, departures_for

    config = TrainConfig(**{**SMALL, "epochs": 2}, objective="iwae", noise="none", noise_level=0.0, num_samples=3,
                         binarization="dynamic")
    assert config.is_data_augmentation and "the paper's data augmentation" in config.describe()
    assert not config.replace(binarization="static").is_data_augmentation
    assert not config.replace(dataset="binarized-mnist").is_data_augmentation  # no grey levels to re-draw
    assert any("re-binarizes" in note for note in departures_for(config))
    assert DATA_AUGMENTATION["IWAE"] == (92.51, 0.07) and DATA_AUGMENTATION["VAE"] == (93.88, 0.08)
    from dvae_engine.data import Dataset

    dynamic = load_dataset("digits", binarization="dynamic")
    seen = []
    original = Dataset.resample_train

    def spy(self, generator):
        original(self, generator)
        seen.append(self.train.clone())

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Dataset, "resample_train", spy)
        train(config, dynamic)
    assert len(seen) == 2 and not torch.equal(seen[0], seen[1])  # every epoch sees a new binarization
    assert set(seen[0].unique().tolist()) <= {0.0, 1.0}


def test_departures_from_the_paper_are_listed_for_the_runs_they_concern():
    from dvae_engine.paper import departures_for

    iwae = TrainConfig(dataset="mnist", objective="iwae", noise="none", noise_level=0.0, num_samples=5)
    assert any("tanh" in note for note in departures_for(iwae))
    assert not any("tanh" in note for note in departures_for(iwae.replace(activation="tanh")))
    frey = TrainConfig(dataset="frey", objective="dvae", noise="gaussian", noise_level=0.025)
    assert any("σ" in note for note in departures_for(frey))
    mean = TrainConfig(dataset="mnist", objective="dvae", noise="mean-image", noise_level=0.1)
    assert any("rescaled" in note for note in departures_for(mean))


def test_recipe_options_output_bias_adam_eps_and_warmup(digits):
    from dvae_engine.training import kl_weight

    config = TrainConfig(**{**SMALL, "epochs": 1}, objective="vae", noise="none", noise_level=0.0,
                         output_bias="data-mean", adam_eps=1e-4, kl_warmup_epochs=3)
    assert [kl_weight(config, e) for e in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    stop = threading.Event()
    stop.set()  # no step at all: the model as initialised
    start = train(config, digits, stop_event=stop)
    bias = start.model.decoder[-1].bias
    mean = digits.train.mean(0).clamp(1e-3, 1 - 1e-3)
    torch.testing.assert_close(torch.sigmoid(bias), mean, rtol=0, atol=1e-6)
    assert start.optimizer.param_groups[0]["eps"] == 1e-4
    with pytest.raises(ValueError, match="output_bias"):
        TrainConfig(**SMALL, output_bias="zeros")
    with pytest.raises(ValueError, match="kl_warmup_epochs"):
        TrainConfig(**SMALL, kl_warmup_epochs=-1)
