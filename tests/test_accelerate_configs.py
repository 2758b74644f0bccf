"""Every accelerate config under recipes/accelerate_configs loads with accelerate's own config class."""

import pathlib

import pytest
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import launch_command_parser
from accelerate.utils import DistributedType

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "recipes" / "accelerate_configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
EXPECTED_TYPES = {
    "single_gpu": DistributedType.NO,
    "multi_gpu": DistributedType.MULTI_GPU,
    # accelerate 1.15 launches MULTI_CPU only through mpirun; see the file's comment.
    "cpu_multi_process": DistributedType.MULTI_GPU,
    "fsdp": DistributedType.FSDP,
}


def test_the_folder_holds_the_documented_configs():
    assert sorted(path.stem for path in CONFIGS) == sorted(EXPECTED_TYPES)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_config_loads_with_accelerate(path):
    # from_yaml_file raises ValueError on keys accelerate does not know.
    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type == EXPECTED_TYPES[path.stem]
    assert config.num_machines == 1 and config.num_processes >= 1
    assert config.mixed_precision in ("no", "fp16", "bf16")


def test_fsdp_config_asks_for_fsdp2_with_options_accelerate_launch_knows():
    config = load_config_from_file(str(CONFIG_DIR / "fsdp.yaml"))
    launch_flags = {action.dest for action in launch_command_parser()._actions}
    assert config.fsdp_config["fsdp_version"] == 2
    unknown = sorted(set(config.fsdp_config) - launch_flags)
    assert not unknown, f"fsdp.yaml: accelerate launch has no option for {unknown}"
    # FSDP1-only options: FSDP2 replaced them (sharding_strategy by reshard_after_forward) or has no use for them.
    assert not {"fsdp_sharding_strategy", "fsdp_use_orig_params", "fsdp_sync_module_states"} & set(config.fsdp_config)


def test_cpu_config_starts_two_processes_through_torchrun():
    config = load_config_from_file(str(CONFIG_DIR / "cpu_multi_process.yaml"))
    assert config.num_processes == 2 and not config.use_cpu
