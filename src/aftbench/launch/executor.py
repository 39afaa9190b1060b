"""A submitit executor for one job kind's resources (`slurm` or `submitit_local`), and the error
a waiting process raises when its job ends without a result."""

from __future__ import annotations

from pathlib import Path


class JobFailed(RuntimeError):
    pass


def make_executor(launcher: str, job: dict, folder: str | Path, name: str, runs: int = 1):
    """The executor for `job` (aftbench.launch.launcher.job_spec) writing under `folder/<job id>`.
    A pack of `runs` runs asks for `runs ×` the kind's time limit (they run one after another)."""
    import submitit

    r = job["resources"]
    ex = submitit.AutoExecutor(
        folder=str(Path(folder).resolve() / "%j"),
        cluster="slurm" if launcher == "slurm" else "local",
        slurm_max_num_timeout=job["max_requeues"],
    )
    params = {
        "name": name,
        "timeout_min": int(r["time_min"]) * runs,
        "cpus_per_task": int(r["cpus"]),
        "mem_gb": r["mem_gb"],
    }
    if r["gpus"]:
        params["gpus_per_node"] = int(r["gpus"])
    if launcher == "slurm":
        # SLURM warns a job this long before its time limit (submitit checkpoints and requeues it then):
        # 90 s, submitit's default, but never more than half the limit, or a short job would be told
        # at its start that it timed out, and requeue itself until max_requeues ran out.
        params["slurm_signal_delay_s"] = min(90, 30 * params["timeout_min"])
        for key in ("partition", "account", "qos"):
            if r[key]:
                params[f"slurm_{key}"] = r[key]
        if r["sbatch"]:
            params["slurm_additional_parameters"] = dict(r["sbatch"])
    ex.update_parameters(**params)
    return ex


def tail(path: str | Path, n: int = 40) -> str:
    """The last `n` lines of a log ('' when there is none yet)."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return ""
