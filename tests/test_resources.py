"""The one time and memory grammar (reflow.resources), through every surface and executor.

One table of inputs: each of the six forms of Slurm's `--time`, memory sizes
with and without `B` in both cases, and values that are refused.  Each
accepted input is rendered by every executor (`executor.render(command,
JobResources(...))`) and its directive checked, written out by hand per
scheduler; each refused one raises the one message, everywhere: in a job
script, in `@wf.job(...)` and in the config's `[dispatch]` section.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reflow import Workflow
from reflow.config import Config
from reflow.errors import ConfigError, ValidationError
from reflow.executors import (
    Executor,
    FluxExecutor,
    JobResources,
    LocalExecutor,
    LSFExecutor,
    PBSExecutor,
    SGEExecutor,
    SlurmExecutor,
)
from reflow.resources import (
    MEM_EXPECTED,
    TIME_EXPECTED,
    Memory,
    ResourceError,
    normal_mem,
    normal_time,
    parse_mem,
    time_seconds,
)

EXECUTORS: dict[str, Callable[[Path], Executor]] = {
    "slurm": lambda _: SlurmExecutor(),
    "sge": lambda _: SGEExecutor(),
    "pbs_pro": lambda _: PBSExecutor(flavor="pro"),
    "torque": lambda _: PBSExecutor(flavor="torque"),
    "lsf": lambda _: LSFExecutor(),
    "flux": lambda _: FluxExecutor(),
    "local": lambda tmp: LocalExecutor(tmp / "local-jobs"),
}
WHICH = list(EXECUTORS)

# time limit -> (seconds, {executor: its directive})
TIMES: dict[str, tuple[int, dict[str, str]]] = {
    "90": (  # minutes
        5400,
        {
            "slurm": "#SBATCH --time=90",
            "sge": "#$ -l h_rt=1:30:00",
            "pbs_pro": "#PBS -l walltime=01:30:00",
            "torque": "#PBS -l walltime=01:30:00",
            "lsf": "#BSUB -W 1:30",
            "flux": "--time-limit=5400s",
            "local": "# time limit 5400 s: not enforced on this machine",
        },
    ),
    "30:15": (  # minutes:seconds
        1815,
        {
            "slurm": "#SBATCH --time=30:15",
            "sge": "#$ -l h_rt=0:30:15",
            "pbs_pro": "#PBS -l walltime=00:30:15",
            "torque": "#PBS -l walltime=00:30:15",
            "lsf": "#BSUB -W 31",  # whole minutes, rounded up
            "flux": "--time-limit=1815s",
            "local": "# time limit 1815 s: not enforced on this machine",
        },
    ),
    "02:00:00": (  # hours:minutes:seconds
        7200,
        {
            "slurm": "#SBATCH --time=02:00:00",
            "sge": "#$ -l h_rt=2:00:00",
            "pbs_pro": "#PBS -l walltime=02:00:00",
            "torque": "#PBS -l walltime=02:00:00",
            "lsf": "#BSUB -W 2:00",
            "flux": "--time-limit=7200s",
            "local": "# time limit 7200 s: not enforced on this machine",
        },
    ),
    "100:00:00": (  # hours past a day, without days
        360000,
        {
            "slurm": "#SBATCH --time=100:00:00",
            "sge": "#$ -l h_rt=100:00:00",
            "pbs_pro": "#PBS -l walltime=100:00:00",
            "torque": "#PBS -l walltime=100:00:00",
            "lsf": "#BSUB -W 100:00",
            "flux": "--time-limit=360000s",
            "local": "# time limit 360000 s: not enforced on this machine",
        },
    ),
    "1-12": (  # days-hours
        129600,
        {
            "slurm": "#SBATCH --time=1-12",
            "sge": "#$ -l h_rt=36:00:00",
            "pbs_pro": "#PBS -l walltime=36:00:00",
            "torque": "#PBS -l walltime=36:00:00",
            "lsf": "#BSUB -W 36:00",
            "flux": "--time-limit=129600s",
            "local": "# time limit 129600 s: not enforced on this machine",
        },
    ),
    "1-12:30": (  # days-hours:minutes
        131400,
        {
            "slurm": "#SBATCH --time=1-12:30",
            "sge": "#$ -l h_rt=36:30:00",
            "pbs_pro": "#PBS -l walltime=36:30:00",
            "torque": "#PBS -l walltime=36:30:00",
            "lsf": "#BSUB -W 36:30",
            "flux": "--time-limit=131400s",
            "local": "# time limit 131400 s: not enforced on this machine",
        },
    ),
    "1-02:00:05": (  # days-hours:minutes:seconds
        93605,
        {
            "slurm": "#SBATCH --time=1-02:00:05",
            "sge": "#$ -l h_rt=26:00:05",
            "pbs_pro": "#PBS -l walltime=26:00:05",
            "torque": "#PBS -l walltime=26:00:05",
            "lsf": "#BSUB -W 26:01",
            "flux": "--time-limit=93605s",
            "local": "# time limit 93605 s: not enforced on this machine",
        },
    ),
    "00:00:30": (  # under a minute
        30,
        {
            "slurm": "#SBATCH --time=00:00:30",
            "sge": "#$ -l h_rt=0:00:30",
            "pbs_pro": "#PBS -l walltime=00:00:30",
            "torque": "#PBS -l walltime=00:00:30",
            "lsf": "#BSUB -W 1",
            "flux": "--time-limit=30s",
            "local": "# time limit 30 s: not enforced on this machine",
        },
    ),
}

BAD_TIMES = [
    "0:99:99",  # seconds and minutes out of range
    "10:60",  # minutes:seconds with 60 seconds
    "1:60:00",  # 60 minutes after hours
    "1-24",  # 24 hours after days
    "1-2:60",  # 60 minutes after days-hours
    "1-02:00:60",
    "0",  # zero
    "00:00:00",
    "0-0",
    "1:2:3",  # fields after a colon have two digits
    "1-123",
    "soon",
    "-5",
    "1.5",
    "10 minutes",
]


def _mem_table(slurm: str, sge: str, pbs: str, lsf: str, shown: str) -> dict[str, str]:
    return {
        "slurm": f"#SBATCH --mem={slurm}",
        "sge": f"#$ -l h_vmem={sge}",  # per slot: the job asks for 2 CPUs
        "pbs_pro": f"#PBS -l select=1:ncpus=2:mem={pbs}",
        "torque": f"#PBS -l mem={pbs}",
        "lsf": f"#BSUB -M {lsf}",
        "flux": f"# mem={shown} is not passed: Flux jobs ask for cores, not memory",
        "local": f"# mem={shown}: not enforced on this machine",
    }


FOUR_G = _mem_table("4G", "2G", "4gb", "4GB", "4G")
HALF_G = _mem_table("500M", "250M", "500mb", "500MB", "500M")
HALF_M = _mem_table("512K", "256K", "512kb", "512KB", "512K")
ONE_T = _mem_table("1T", "512G", "1tb", "1TB", "1T")
TWO_G = _mem_table("2048M", "1G", "2048mb", "2048MB", "2048M")

# memory size -> (bytes, {executor: its directive})
MEMS: dict[str, tuple[int, dict[str, str]]] = {
    "4G": (4 << 30, FOUR_G),
    "4GB": (4 << 30, FOUR_G),
    "4gb": (4 << 30, FOUR_G),
    "4g": (4 << 30, FOUR_G),
    "4 G": (4 << 30, FOUR_G),
    "500M": (500 << 20, HALF_G),
    "500mb": (500 << 20, HALF_G),
    "512k": (512 << 10, HALF_M),
    "512KB": (512 << 10, HALF_M),
    "1T": (1 << 40, ONE_T),
    "1tb": (1 << 40, ONE_T),
    "2048": (2048 << 20, TWO_G),  # a plain number is MB
}

BAD_MEMS = ["0", "0G", "-1G", "lots", "1.5G", "500B", "4X", "G", "4GiB"]


def _lines(script: str) -> set[str]:
    """The script's lines, each without its `\\` continuation (Flux's argv is one per line)."""
    return {line.strip().removesuffix("\\").strip() for line in script.splitlines()}


# --------------------------------------------------------------------------- the grammar


@pytest.mark.parametrize("text", list(TIMES))
def test_every_time_form_is_read_as_seconds(text: str) -> None:
    assert time_seconds(text) == TIMES[text][0]
    assert normal_time(f"  {text} ") == text  # kept as written: Slurm takes it as it is


@pytest.mark.parametrize("text", BAD_TIMES)
def test_a_bad_time_limit_has_one_message(text: str) -> None:
    with pytest.raises(ResourceError) as caught:
        time_seconds(text)
    assert str(caught.value) == f"time={text!r} is not {TIME_EXPECTED}"
    assert caught.value.expected == TIME_EXPECTED


@pytest.mark.parametrize("text", list(MEMS))
def test_every_memory_form_is_read_as_bytes(text: str) -> None:
    assert parse_mem(text).nbytes == MEMS[text][0]


def test_memory_keeps_the_unit_it_was_written_in() -> None:
    assert parse_mem("1024m") == Memory(1024, "M") and str(parse_mem("1024m")) == "1024M"
    assert parse_mem(4096) == Memory(4096, "M")  # an int is MB
    assert normal_mem("16gb") == "16G"


@pytest.mark.parametrize("value", [*BAD_MEMS, 0, -4, True, 1.5, None])
def test_a_bad_memory_size_has_one_message(value: object) -> None:
    with pytest.raises(ResourceError) as caught:
        parse_mem(value)
    assert str(caught.value) == f"mem={value!r} is not {MEM_EXPECTED}"
    assert caught.value.expected == MEM_EXPECTED


# --------------------------------------------------------------------------- every executor


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("text", list(TIMES))
def test_each_executor_renders_each_time_form(which: str, text: str, tmp_path: Path) -> None:
    script = EXECUTORS[which](tmp_path).render(["true"], JobResources(name="t.x", time=text))
    assert TIMES[text][1][which] in _lines(script)


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("text", list(MEMS))
def test_each_executor_renders_each_memory_form(which: str, text: str, tmp_path: Path) -> None:
    resources = JobResources(name="t.x", cpus=2, mem=text)
    script = EXECUTORS[which](tmp_path).render(["true"], resources)
    assert MEMS[text][1][which] in _lines(script)


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("text", BAD_TIMES)
def test_each_executor_refuses_a_bad_time_with_the_one_message(
    which: str, text: str, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError) as caught:
        EXECUTORS[which](tmp_path).render(["true"], JobResources(name="t.x", time=text))
    assert str(caught.value) == f"time={text!r} is not {TIME_EXPECTED}"


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("text", BAD_MEMS)
def test_each_executor_refuses_a_bad_memory_size_with_the_one_message(
    which: str, text: str, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError) as caught:
        EXECUTORS[which](tmp_path).render(["true"], JobResources(name="t.x", mem=text))
    assert str(caught.value) == f"mem={text!r} is not {MEM_EXPECTED}"


# --------------------------------------------------------------------------- task and config


@pytest.mark.parametrize("text", list(TIMES))
def test_a_task_takes_every_time_form(text: str) -> None:
    wf = Workflow("r")

    @wf.job(time=text)
    def task() -> int:
        return 1

    assert wf.tasks["task"].time == text
    assert Config(dispatch_time=text).dispatch_time == text


@pytest.mark.parametrize("text", BAD_TIMES)
def test_a_task_and_the_config_refuse_a_bad_time_with_the_one_message(text: str) -> None:
    wf = Workflow("r")
    with pytest.raises(ValidationError) as caught:

        @wf.job(time=text)
        def slow() -> int:
            return 1

    assert str(caught.value) == f"task 'slow': time={text!r} is not {TIME_EXPECTED}"
    with pytest.raises(ConfigError) as config:
        Config(dispatch_time=text)
    assert "dispatch_time" in str(config.value) and TIME_EXPECTED in str(config.value)


@pytest.mark.parametrize("text", BAD_MEMS)
def test_a_task_and_the_config_refuse_a_bad_memory_size_with_the_one_message(text: str) -> None:
    wf = Workflow("r")
    with pytest.raises(ValidationError) as caught:

        @wf.job(mem=text)
        def big() -> int:
            return 1

    assert str(caught.value) == f"task 'big': mem={text!r} is not {MEM_EXPECTED}"
    with pytest.raises(ConfigError) as config:
        Config(dispatch_mem=text)
    assert "dispatch_mem" in str(config.value) and MEM_EXPECTED in str(config.value)
