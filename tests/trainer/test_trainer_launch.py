"""The shipped accelerate configs parse as accelerate reads them; the launcher's command."""

from __future__ import annotations

import pytest

pytest.importorskip("accelerate")
from sftdata.trainer.launch import CONFIGS, accelerate_config, command  # noqa: E402


@pytest.mark.parametrize("name, kind", [("ddp", "MULTI_GPU"), ("fsdp2", "FSDP")])
def test_the_shipped_configs_are_what_accelerate_reads(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(accelerate_config(name)))
    assert config.distributed_type.value == kind and config.use_cpu is False
    if name == "fsdp2":
        assert config.fsdp_config["fsdp_version"] == 2
        assert config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"


def test_the_launch_command_runs_sftdata_train_under_accelerate():
    cmd = command("fsdp2", 8, ["--config", "train.yaml"])
    assert cmd[1:4] == ["-m", "accelerate.commands.launch", "--config_file"]
    assert cmd[4] == str(accelerate_config("fsdp2")) and cmd[5:7] == ["--num_processes", "8"]
    assert cmd[7:] == ["-m", "sftdata", "train", "--config", "train.yaml"]
    assert set(CONFIGS) == {"ddp", "fsdp2"}
    with pytest.raises(ValueError):
        accelerate_config("deepspeed")


def test_the_configs_are_installed_with_the_package():
    from importlib.resources import files

    names = {p.name for p in files("sftdata.trainer").iterdir()}
    assert {"accelerate_ddp.yaml", "accelerate_fsdp2.yaml"} <= names
