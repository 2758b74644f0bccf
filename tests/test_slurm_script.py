"""recipes/slurm/multi_node.sbatch, run with stand-ins for srun, scontrol and accelerate: each node's launcher
gets the arguments accelerate's multi-machine launch needs, and accelerate's own parser accepts them."""

import os
import pathlib
import shlex
import stat
import subprocess

from accelerate.commands.launch import launch_command_parser

REPO = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = REPO / "recipes" / "slurm" / "multi_node.sbatch"


def stand_in(directory: pathlib.Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_each_node_launches_accelerate_with_its_machine_rank(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # srun runs the command once per node, as SLURM does, with that node's SLURM_NODEID
    stand_in(bin_dir, "srun", 'shift; for node in 0 1 2; do SLURM_NODEID=$node "$@"; done\n')
    stand_in(bin_dir, "scontrol", "printf 'gpu-a17\\ngpu-a18\\ngpu-a19\\n'\n")
    stand_in(bin_dir, "accelerate", f'printf "%q " "$@" >> {tmp_path}/launches; echo >> {tmp_path}/launches\n')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_NNODES": "3",
           "SLURM_JOB_NODELIST": "gpu-a[17-19]", "GPUS_PER_NODE": "4", "RECIPE": "recipes/domain_adapt.py"}
    subprocess.run(["bash", str(SCRIPT), "--output_dir", "/shared/runs/med", "--max_steps", "100"],
                   env=env, cwd=REPO, check=True, timeout=30)
    launches = [shlex.split(line) for line in (tmp_path / "launches").read_text().splitlines()]
    assert len(launches) == 3
    for node, argv in enumerate(launches):
        assert argv[0] == "launch"
        args = launch_command_parser().parse_args(argv[1:])
        assert (args.num_machines, args.machine_rank, args.num_processes) == (3, node, 12)
        assert (args.main_process_ip, args.main_process_port, args.rdzv_backend) == ("gpu-a17", 29500, "static")
        assert args.config_file == "recipes/accelerate_configs/multi_gpu.yaml"
        assert (REPO / args.config_file).is_file() and (REPO / args.training_script).is_file()
        assert args.training_script == "recipes/domain_adapt.py"
        # Requeued, the job runs the same command: auto resumes, or starts from the beginning before a checkpoint.
        assert args.training_script_args == [
            "--resume_from_checkpoint", "auto", "--output_dir", "/shared/runs/med", "--max_steps", "100"]
